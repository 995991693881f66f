from allauth.socialaccount.providers.openid_connect import views as oidc_views
from django.contrib import admin
from django.urls import include, path

from conversations.accounts.single_sign_on import provider_reached

urlpatterns = [
    path("admin/", admin.site.urls),
    # Single sign-on: allauth's OpenID Connect sign-in and its callback, /accounts/oidc/<provider id>/login/
    # (and login/callback/, the redirect URI a provider is given). None of allauth's other pages.
    path(
        "accounts/oidc/<str:provider_id>/login/",
        provider_reached(oidc_views.login),
        name="openid_connect_login",
    ),
    path(
        "accounts/oidc/<str:provider_id>/login/callback/",
        provider_reached(oidc_views.callback),
        name="openid_connect_callback",
    ),
    path("", include("conversations.urls")),
]

handler400 = "conversations.web.errors.bad_request"
