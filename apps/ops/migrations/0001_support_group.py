"""Create the read-only "support" group with view permissions on every Sluice model."""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_support_group(apps, schema_editor):
    db = schema_editor.connection.alias
    # Permissions are normally created after migrate (post_migrate); on a fresh database
    # they do not exist yet, so create them now for the models this migration can see.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, using=db, apps=apps)
        app_config.models_module = None
    labels = [c.label for c in global_apps.get_app_configs() if c.name.startswith("apps.")]
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.using(db).get_or_create(name="support")
    group.permissions.add(
        *Permission.objects.using(db).filter(
            content_type__app_label__in=labels, codename__startswith="view_"
        )
    )


def delete_support_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(
        name="support"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("accounts", "0003_seed_plans"),
        ("enrichment", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_support_group, delete_support_group)]
