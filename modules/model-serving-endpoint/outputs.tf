output "id" {
  description = "The served model's name."
  value       = rtserve_model_serving.this.id
}

output "state" {
  description = "ENDPOINT_STATE_READY once applied with wait_for_ready."
  value       = rtserve_model_serving.this.state
}

output "invocation_urls" {
  description = "Stage -> scoring URL (Staging and Production)."
  value       = rtserve_model_serving.this.invocation_urls
}

output "staging_url" {
  description = "Scoring URL of the Staging stage."
  value       = rtserve_model_serving.this.invocation_urls["Staging"]
}

output "production_url" {
  description = "Scoring URL of the Production stage."
  value       = rtserve_model_serving.this.invocation_urls["Production"]
}

output "version_invocation_urls" {
  description = "Served version -> scoring URL."
  value       = rtserve_model_serving.this.version_invocation_urls
}

output "promoted_versions" {
  description = "Stage -> version, as applied."
  value       = { for stage, promotion in rtserve_model_version_stage.promotion : stage => promotion.version }
}

output "promoted_version_urls" {
  description = "Stage -> scoring URL of the version promoted into it."
  value       = { for stage, promotion in rtserve_model_version_stage.promotion : stage => promotion.invocation_url }
}
