from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "apps.imports"
    label = "imports"
    verbose_name = "Imports and exports"

    def ready(self) -> None:
        # import.completed instead of bulk.completed for an import's bulk (enrichment's signal).
        from apps.enrichment.signals import bulk_completed

        from .services.imports import import_bulk_completed

        bulk_completed.connect(import_bulk_completed, dispatch_uid="imports.bulk_completed")
