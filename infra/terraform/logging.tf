# Vertex AI custom-job state changes to vertex-events, through a log sink
# (var.vertex_log_sink). Its writer identity may publish there
# (generated_iam_grants.tf: log_sink_vertex_events_publisher).
#
# The filter is UNVERIFIED: no public page documents a log entry for a custom
# job's state change, so it may match nothing. The watchdog's poll of each
# job's Vertex AI state (every tick) is the real signal; the sink only makes
# the reaction sooner when it does match.

resource "google_logging_project_sink" "vertex_events" {
  count                  = var.vertex_log_sink ? 1 : 0
  project                = var.project
  name                   = "fast-render-vertex-events"
  description            = "Vertex AI custom-job state changes to vertex-events (unverified filter; the watchdog polls anyway)."
  destination            = "pubsub.googleapis.com/${google_pubsub_topic.vertex_events.id}"
  filter                 = "(resource.type=\"ml_job\" OR resource.type=\"aiplatform.googleapis.com/CustomJob\") AND labels.\"ml.googleapis.com/job_state\":*"
  unique_writer_identity = true

  depends_on = [google_project_service.logging]
}
