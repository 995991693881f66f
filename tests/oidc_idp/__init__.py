"""A real OpenID Connect provider for the single sign-on tests: a Django project of its own running
django-allauth's provider (`allauth.idp.oidc`) on loopback, with its own SQLite file. Its users, their
e-mail and their `groups` claim (their groups here) are set by its commands (`idp_user`, `idp_client`),
which the tests run as the operator of a real provider would."""
