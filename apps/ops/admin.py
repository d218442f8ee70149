"""The admin site's name and index page (with the dashboard link); ops has no models."""

from django.contrib import admin

admin.site.site_header = "Sluice admin"
admin.site.site_title = "Sluice admin"
admin.site.index_title = "Operations"
admin.site.index_template = "admin/ops/index.html"
# Sluice has no public site at "/": hide the admin's "View site" link.
admin.site.site_url = None
