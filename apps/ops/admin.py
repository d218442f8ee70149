"""The admin site's name and index page (with the dashboard link); ops has no models."""

from django.contrib import admin

admin.site.site_header = "Sluice admin"
admin.site.site_title = "Sluice admin"
admin.site.index_title = "Operations"
admin.site.index_template = "admin/ops/index.html"
