"""The whole Sluice admin: the site's name and index page, and every app's ModelAdmins.

Admin code lives here, in ops, the top layer, and not in each app: an admin page reads and
links across apps (an account's page links to its contacts and deliveries, the provider
list shows attempt statistics) and calls ops services, which a lower app may not import.
Django's autodiscover imports ``apps.ops.admin``; importing the submodules registers them.
"""

from django.contrib import admin

from . import accounts, core, enrichment, lists, providers, webhooks

__all__ = ["accounts", "core", "enrichment", "lists", "providers", "webhooks"]

admin.site.site_header = "Sluice admin"
admin.site.site_title = "Sluice admin"
admin.site.index_title = "Operations"
admin.site.index_template = "admin/ops/index.html"
# Sluice has no public site at "/": hide the admin's "View site" link.
admin.site.site_url = None
