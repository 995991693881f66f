"""The provider's claims: allauth's, and `groups`, the names of the user's groups on the provider."""

from typing import Any

from allauth.idp.oidc.adapter import DefaultOIDCAdapter


class GroupsClaimAdapter(DefaultOIDCAdapter):
    def get_claims(
        self, purpose: str, user: Any, client: Any, scopes: Any, email: str | None = None, **kwargs: Any
    ):
        claims = super().get_claims(purpose, user, client, scopes, email=email, **kwargs)
        claims["groups"] = sorted(user.groups.values_list("name", flat=True))
        return claims
