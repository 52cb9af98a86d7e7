variable "model_name" {
  description = "Registered model to serve."
  type        = string

  validation {
    condition     = length(trimspace(var.model_name)) > 0
    error_message = "model_name must be a non-empty string."
  }
}

variable "staging" {
  description = "Compute of the Staging stage; null leaves the stage unmanaged (the backend's default: Small, no scale to zero)."
  type = object({
    workload_size         = optional(string, "Small")
    scale_to_zero_enabled = optional(bool, false)
  })
  default = null

  validation {
    condition     = var.staging == null || contains(["Small", "Medium", "Large"], try(var.staging.workload_size, ""))
    error_message = "staging.workload_size must be one of Small, Medium, Large."
  }
}

variable "production" {
  description = "Compute of the Production stage; null leaves the stage unmanaged (the backend's default: Small, no scale to zero)."
  type = object({
    workload_size         = optional(string, "Small")
    scale_to_zero_enabled = optional(bool, false)
  })
  default = null

  validation {
    condition     = var.production == null || contains(["Small", "Medium", "Large"], try(var.production.workload_size, ""))
    error_message = "production.workload_size must be one of Small, Medium, Large."
  }
}

variable "promotions" {
  description = "Stage -> model version, e.g. { Production = \"1\", Staging = \"2\" }. A promotion is a change of one number."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for stage in keys(var.promotions) : contains(["Staging", "Production"], stage)])
    error_message = "promotions keys must be \"Staging\" or \"Production\"."
  }

  validation {
    condition     = alltrue([for version in values(var.promotions) : can(regex("^[1-9][0-9]*$", version))])
    error_message = "promotions values must be model version numbers such as \"2\"."
  }
}

variable "archive_existing_versions" {
  description = "Archive the other versions of a stage when promoting into it (Databricks' default: false; the replaced version is archived once the new one serves)."
  type        = bool
  default     = false
}

variable "comment" {
  description = "Recorded with each promotion in the model's events."
  type        = string
  default     = null
}

variable "wait_for_ready" {
  description = "Apply returns once the endpoint and every promoted version are READY."
  type        = bool
  default     = true
}

variable "timeout" {
  description = "How long create and update wait for readiness (a duration: \"90s\", \"20m\", \"1h\")."
  type        = string
  default     = "20m"
}

variable "disable_on_destroy" {
  description = "Destroy disables serving for the model. Set false when several configurations share the model (one per stage)."
  type        = bool
  default     = true
}
