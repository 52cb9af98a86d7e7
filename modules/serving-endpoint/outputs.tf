output "id" {
  description = "The endpoint's name."
  value       = rtserve_serving_endpoint.this.id
}

output "endpoint_id" {
  description = "The backend's id of the endpoint (what the permissions API takes)."
  value       = rtserve_serving_endpoint.this.endpoint_id
}

output "endpoint_url" {
  description = "Scoring URL of the endpoint, which splits requests by traffic: <host>/serving-endpoints/<name>/invocations."
  value       = rtserve_serving_endpoint.this.endpoint_url
}

output "served_entity_urls" {
  description = "Served entity name -> its own scoring URL, bypassing the split: <host>/serving-endpoints/<name>/served-models/<entity>/invocations."
  value = {
    for entity in rtserve_serving_endpoint.this.served_entities :
    entity.name => "${trimsuffix(rtserve_serving_endpoint.this.endpoint_url, "/invocations")}/served-models/${entity.name}/invocations"
  }
}

output "served_entities" {
  description = "Served entity name -> { model, version, workload_size, scale_to_zero_enabled }, as applied."
  value = {
    for entity in rtserve_serving_endpoint.this.served_entities : entity.name => {
      model                 = entity.entity_name
      version               = entity.entity_version
      workload_size         = entity.workload_size
      scale_to_zero_enabled = entity.scale_to_zero_enabled
    }
  }
}

output "traffic" {
  description = "Served entity name -> percentage of requests, as applied."
  value       = { for route in rtserve_serving_endpoint.this.traffic_config.routes : route.served_model_name => route.traffic_percentage }
}

output "config_version" {
  description = "Version of the serving config: 1 at creation, one more per change of served_entities or traffic."
  value       = rtserve_serving_endpoint.this.config_version
}

output "permissions_id" {
  description = "The id of the endpoint's access control list (/serving-endpoints/<endpoint_id>); null without access_control."
  value       = one(rtserve_permissions.this[*].id)
}
