from allauth.idp.oidc.models import Client
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Register (or set again) a confidential client of the test provider."

    def add_arguments(self, parser):
        parser.add_argument("client_id")
        parser.add_argument("secret")
        parser.add_argument("redirect_uri")
        parser.add_argument("--consent", action="store_true", help="Ask the user's consent (else skipped).")

    def handle(self, *args, client_id, secret, redirect_uri, consent, **options):
        client, _ = Client.objects.get_or_create(id=client_id, defaults={"name": client_id})
        client.type = Client.Type.CONFIDENTIAL
        client.set_secret(secret)
        client.set_redirect_uris([redirect_uri])
        client.set_scopes(["openid", "profile", "email"])
        client.set_default_scopes(["openid", "profile", "email"])
        client.set_grant_types(["authorization_code"])
        client.set_response_types(["code"])
        client.skip_consent = not consent
        client.save()
