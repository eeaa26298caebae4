# The module's settings. Only project is required; the rest have the defaults
# the product's own settings have (functions/config.py, infra/iam.yaml).

variable "project" {
  description = "The Google Cloud project id to deploy into."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "project: a project id is 6 to 30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  description = "The region of the functions, buckets, Firestore (unless firestore_location) and Vertex AI jobs. Render VMs go to the GPU catalog's zones, with a subnet in each of their regions and in this one."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region: a region name such as us-central1."
  }
}

variable "firestore_location" {
  description = "The Firestore database's location (a region or a multi-region such as nam5); empty: the region."
  type        = string
  default     = ""
}

variable "firestore_deletion_protection" {
  description = "Keep the Firestore database when the module is destroyed (false only for a throw-away environment)."
  type        = bool
  default     = true
}

variable "worker_image" {
  description = "The worker's container image; empty: REGION-docker.pkg.dev/PROJECT/render/worker:latest (the repository of artifact_registry.tf)."
  type        = string
  default     = ""
}

variable "vm_name_prefix" {
  description = "Render VMs are named PREFIX<job>-a<attempt> (VM_NAME_PREFIX); the IAM condition lets the functions touch only those."
  type        = string
  default     = "av-render-"

  # functions/config.py's limit: a VM name (prefix, a job id of up to 40, -a<attempt>) has at most 63 characters.
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.vm_name_prefix))
    error_message = "vm_name_prefix: lowercase letters, digits and hyphens, starting with a letter, at most 20 characters."
  }
}

variable "vm_network_tag" {
  description = "The network tag of the render VMs (VM_NETWORK_TAG): the firewall denies all ingress to it."
  type        = string
  default     = "autovideo-render"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", var.vm_network_tag))
    error_message = "vm_network_tag: a network tag is lowercase letters, digits and hyphens, 1 to 63 characters."
  }
}

variable "vm_ip_range" {
  description = "The range the render subnets' ranges come from: region R's subnet fast-render-vms is cidrsubnet(vm_ip_range, 8, N), N fixed per region in infra/tf_network.py (a /20 each from the default)."
  type        = string
  default     = "10.16.0.0/12"

  validation {
    # 8 more bits for up to 256 regions, each at least a /29 (Compute Engine's smallest subnet).
    condition     = can(cidrsubnet(var.vm_ip_range, 8, 255)) && can(regex("/([0-9]|1[0-9]|2[01])$", var.vm_ip_range))
    error_message = "vm_ip_range: an IPv4 range of /21 or larger, such as 10.16.0.0/12."
  }
}

variable "enable_nat" {
  description = "Give the VMs (no external IP) Cloud NAT to the internet, in every render subnet's region. Off: nothing they need is outside Google's APIs, which Private Google Access reaches."
  type        = bool
  default     = false
}

variable "vertex_log_sink" {
  description = "Route Vertex AI job-state log entries to vertex-events through a log sink (unverified filter: logging.tf). The watchdog's poll works without it."
  type        = bool
  default     = true
}

variable "operators" {
  description = "Who may read /status and use its controls: \"user:EMAIL\" or \"group:EMAIL\". Only user: and serviceAccount: emails reach STATUS_OPERATORS (a group member may read, not write)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.operators : can(regex("^(user|group|serviceAccount):[^@\\s]+@[^@\\s]+$", m))])
    error_message = "operators: each entry is \"user:EMAIL\", \"group:EMAIL\" or \"serviceAccount:EMAIL\"."
  }
}

variable "viewers" {
  description = "Who may read /status and the dashboard, and nothing else: \"user:EMAIL\" or \"group:EMAIL\"."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.viewers : can(regex("^(user|group|serviceAccount):[^@\\s]+@[^@\\s]+$", m))])
    error_message = "viewers: each entry is \"user:EMAIL\", \"group:EMAIL\" or \"serviceAccount:EMAIL\"."
  }
}

variable "status_extra_audiences" {
  description = "More audiences /status accepts in an ID token (STATUS_AUDIENCE, beside its URL). The default is gcloud's OAuth client, the audience of a person's `gcloud auth print-identity-token` (which takes no --audiences for a user account); Cloud Run's invoker IAM admits only operators and viewers first. []: service accounts only."
  type        = list(string)
  default     = ["32555940559.apps.googleusercontent.com"]
}

variable "staged_job_retention_days" {
  description = "Days a staged job's objects (jobs/<job>/...) are kept in the staging bucket."
  type        = number
  default     = 30

  validation {
    condition     = var.staged_job_retention_days >= 1 && floor(var.staged_job_retention_days) == var.staged_job_retention_days
    error_message = "staged_job_retention_days: a whole number of days, at least 1."
  }
}

variable "segment_retention_days" {
  description = "Days a rendered segment (jobs/<job>/segments/<hash>.mp4, kept so a resumed render reuses it) is kept; at most staged_job_retention_days."
  type        = number
  default     = 7

  validation {
    condition     = var.segment_retention_days >= 1 && floor(var.segment_retention_days) == var.segment_retention_days
    error_message = "segment_retention_days: a whole number of days, at least 1."
  }
}

variable "output_retention_days" {
  description = "Days a finished video (renders/<job>/...) is kept in the output bucket; 0: kept until deleted."
  type        = number
  default     = 0

  validation {
    condition     = var.output_retention_days >= 0 && floor(var.output_retention_days) == var.output_retention_days
    error_message = "output_retention_days: a whole number of days, 0 to keep videos."
  }
}

variable "job_retention_days" {
  description = "Days a finished job's Firestore document is kept (its expire_at, the TTL policy): JOB_RETENTION_DAYS."
  type        = number
  default     = 90

  validation {
    condition     = var.job_retention_days > 0
    error_message = "job_retention_days: more than 0 days."
  }
}

variable "max_instances" {
  description = "The most instances of each function at once."
  type        = number
  default     = 10

  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 1000
    error_message = "max_instances: from 1 to 1000."
  }
}

variable "force_destroy_buckets" {
  description = "Let terraform destroy delete the buckets with their objects (true only for a throw-away environment)."
  type        = bool
  default     = false
}
