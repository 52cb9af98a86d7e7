variable "name" {
  description = "Endpoint name: 1 to 63 letters, digits, `-` or `_`. Changing it replaces the endpoint."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,63}$", var.name))
    error_message = "name must be 1 to 63 letters, digits, '-' or '_'."
  }
}

variable "served_entities" {
  description = "The model versions the endpoint serves: model, version, and optionally name (default \"<model>-<version>\"), workload_size (default \"Small\") and scale_to_zero_enabled (default false)."
  type = list(object({
    model                 = string
    version               = string
    name                  = optional(string)
    workload_size         = optional(string, "Small")
    scale_to_zero_enabled = optional(bool, false)
  }))

  validation {
    condition     = length(var.served_entities) >= 1 && length(var.served_entities) <= 15
    error_message = "served_entities must list 1 to 15 model versions."
  }

  validation {
    condition     = alltrue([for entity in var.served_entities : can(regex("^[1-9][0-9]*$", entity.version))])
    error_message = "served_entities[*].version must be a model version number such as \"2\"."
  }

  validation {
    condition     = alltrue([for entity in var.served_entities : contains(["Small", "Medium", "Large"], entity.workload_size)])
    error_message = "served_entities[*].workload_size must be one of Small, Medium, Large."
  }

  validation {
    condition     = alltrue([for entity in var.served_entities : can(regex("^[A-Za-z0-9_-]{1,63}$", coalesce(entity.name, "${entity.model}-${entity.version}")))])
    error_message = "served_entities names must be 1 to 63 letters, digits, '-' or '_'; one without `name` is named \"<model>-<version>\", so give it a name when the model's name has other characters."
  }

  # Two different versions need no names; the same version served twice does.
  validation {
    condition     = length(distinct([for entity in var.served_entities : coalesce(entity.name, "${entity.model}-${entity.version}")])) == length(var.served_entities)
    error_message = "served_entities names must be distinct (one without `name` is named \"<model>-<version>\"): give each entity its own name."
  }
}

variable "traffic" {
  description = "Served entity name -> percentage of requests, whole numbers summing to 100, e.g. { current = 90, candidate = 10 }. Required with several served entities; default: all traffic to the only one."
  type        = map(number)
  default     = null

  validation {
    condition     = var.traffic != null || length(var.served_entities) <= 1
    error_message = "traffic is required when served_entities lists several entities: give each one's percentage, summing to 100, e.g. traffic = { current = 90, candidate = 10 }."
  }

  validation {
    condition     = var.traffic == null ? true : length(var.traffic) > 0
    error_message = "traffic must route to at least one served entity (or be left out with a single served entity)."
  }

  validation {
    condition = var.traffic == null ? true : alltrue([
      for name in keys(var.traffic) : contains([for entity in var.served_entities : coalesce(entity.name, "${entity.model}-${entity.version}")], name)
    ])
    error_message = "traffic keys must be names of served_entities (${join(", ", [for entity in var.served_entities : coalesce(entity.name, "${entity.model}-${entity.version}")])}); got ${var.traffic == null ? "none" : join(", ", keys(var.traffic))}."
  }

  validation {
    condition     = var.traffic == null ? true : alltrue([for share in values(var.traffic) : share >= 0 && share <= 100 && floor(share) == share])
    error_message = "traffic percentages must be whole numbers from 0 to 100."
  }

  validation {
    condition     = var.traffic == null ? true : sum(concat([0], values(var.traffic))) == 100
    error_message = "traffic percentages must sum to 100; they sum to ${var.traffic == null ? 0 : sum(concat([0], values(var.traffic)))}."
  }
}

variable "tags" {
  description = "Tags of the endpoint (key -> value). Changing them alone is one in-place PATCH, with no rollout."
  type        = map(string)
  default     = {}
}

variable "rate_limits" {
  description = "Limits on scoring requests, per minute: calls, key (\"endpoint\": every caller together, the default; \"user\" or \"service_principal\": each token) and principal (one token, by name, with a per-token key). Changes apply in place."
  type = list(object({
    calls     = number
    key       = optional(string)
    principal = optional(string)
  }))
  default = []

  validation {
    condition     = alltrue([for limit in var.rate_limits : limit.calls >= 0 && floor(limit.calls) == limit.calls])
    error_message = "rate_limits[*].calls must be a whole number, 0 or more."
  }

  validation {
    condition     = alltrue([for limit in var.rate_limits : limit.key == null ? true : contains(["endpoint", "user", "service_principal"], limit.key)])
    error_message = "rate_limits[*].key must be one of endpoint, user, service_principal."
  }

  validation {
    condition     = alltrue([for limit in var.rate_limits : limit.principal == null ? true : contains(["user", "service_principal"], coalesce(limit.key, "endpoint"))])
    error_message = "rate_limits[*].principal names a token, so its key must be \"user\" or \"service_principal\"."
  }
}

variable "access_control" {
  description = "Grants on the endpoint: each names one of user_name, group_name or service_principal_name (token names; the group \"users\" is every token) and a permission_level (CAN_VIEW, CAN_QUERY, CAN_MANAGE). They replace the endpoint's own grants, the creator's CAN_MANAGE included. Empty (the default): no rtserve_permissions resource, the endpoint keeps its default grants."
  type = list(object({
    user_name              = optional(string)
    group_name             = optional(string)
    service_principal_name = optional(string)
    permission_level       = string
  }))
  default = []

  validation {
    condition = alltrue([
      for grant in var.access_control : length([for principal in [grant.user_name, grant.group_name, grant.service_principal_name] : principal if principal != null]) == 1
    ])
    error_message = "Each access_control entry names exactly one of user_name, group_name, service_principal_name."
  }

  validation {
    condition     = alltrue([for grant in var.access_control : contains(["CAN_VIEW", "CAN_QUERY", "CAN_MANAGE"], grant.permission_level)])
    error_message = "access_control[*].permission_level must be one of CAN_VIEW, CAN_QUERY, CAN_MANAGE."
  }
}

variable "timeout" {
  description = "How long create and update wait for the endpoint's config to serve (a duration: \"90s\", \"20m\", \"1h\")."
  type        = string
  default     = "20m"
}
