from django.contrib import admin
from django.urls import include, path

# The sidebar repeats the index's list of models and takes 300 px from every list: without it, the lists'
# columns fit a 1280 px window (the breadcrumbs and the index still lead everywhere).
admin.site.enable_nav_sidebar = False

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("conversations.urls")),
]

handler400 = "conversations.web.errors.bad_request"
