locals {
  # Every served entity under the name its route and URL use: the given one, or the backend's default.
  served_entities = [
    for entity in var.served_entities : merge(entity, { name = coalesce(entity.name, "${entity.model}-${entity.version}") })
  ]

  # Routes in the order of served_entities; without traffic, all of it to the only served entity.
  traffic = var.traffic != null ? var.traffic : { (local.served_entities[0].name) = 100 }
  routes = [
    for entity in local.served_entities : {
      served_model_name  = entity.name
      traffic_percentage = local.traffic[entity.name]
    } if contains(keys(local.traffic), entity.name)
  ]
}

resource "rtserve_serving_endpoint" "this" {
  name = var.name
  tags = var.tags

  dynamic "served_entities" {
    for_each = local.served_entities
    content {
      name                  = served_entities.value.name
      entity_name           = served_entities.value.model
      entity_version        = served_entities.value.version
      workload_size         = served_entities.value.workload_size
      scale_to_zero_enabled = served_entities.value.scale_to_zero_enabled
    }
  }

  traffic_config = {
    routes = local.routes
  }

  dynamic "rate_limits" {
    for_each = var.rate_limits
    content {
      calls     = rate_limits.value.calls
      key       = rate_limits.value.key
      principal = rate_limits.value.principal
    }
  }

  timeouts {
    create = var.timeout
    update = var.timeout
  }
}

# Only with grants: the list replaces the endpoint's own grants, so an empty one would remove the creator's
# CAN_MANAGE instead of leaving the defaults alone.
resource "rtserve_permissions" "this" {
  count = length(var.access_control) > 0 ? 1 : 0

  serving_endpoint_id = rtserve_serving_endpoint.this.endpoint_id

  dynamic "access_control" {
    for_each = var.access_control
    content {
      user_name              = access_control.value.user_name
      group_name             = access_control.value.group_name
      service_principal_name = access_control.value.service_principal_name
      permission_level       = access_control.value.permission_level
    }
  }
}
