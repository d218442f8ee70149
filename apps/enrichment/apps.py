from django.apps import AppConfig


class EnrichmentConfig(AppConfig):
    name = "apps.enrichment"
    label = "enrichment"
