from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # Single sign-on: allauth's OpenID Connect sign-in and its callback, /accounts/oidc/<provider id>/login/
    # (and login/callback/, the redirect URI a provider is given). None of allauth's other pages.
    path("accounts/", include("allauth.socialaccount.providers.openid_connect.urls")),
    path("", include("conversations.urls")),
]

handler400 = "conversations.web.errors.bad_request"
