# The product's state (infra/topology.yaml firestore): jobs, the fleet's memory,
# the spend. Its indexes and TTL policy are generated_firestore.tf.
#
# A project has one "(default)" database; if one exists already (an App Engine
# app made it), import it: terraform import google_firestore_database.main
# "projects/PROJECT/databases/(default)".

resource "google_firestore_database" "main" {
  project     = var.project
  name        = "(default)"
  location_id = var.firestore_location != "" ? var.firestore_location : var.region
  type        = "FIRESTORE_NATIVE"

  # Every job's state is here: deleting it by accident loses them all. A
  # throw-away environment sets firestore_deletion_protection = false.
  delete_protection_state = var.firestore_deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy         = var.firestore_deletion_protection ? "ABANDON" : "DELETE"

  # Point-in-time recovery: a bad deploy that rewrites job documents can be undone (7 days).
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"

  depends_on = [google_project_service.firestore]
}
