from allauth.account.models import EmailAddress
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Make or change a user of the test provider; print their `sub`."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--password", default="")
        parser.add_argument("--rename", default="", help="A new username (the `sub` stays).")
        parser.add_argument("--email", default=None)
        parser.add_argument("--email-verified", action="store_true")
        parser.add_argument("--groups", default=None, help="Comma-separated group names; empty: none.")
        parser.add_argument("--inactive", action="store_true")

    def handle(self, *args, username, password, rename, email, email_verified, groups, inactive, **options):
        user, _ = User.objects.get_or_create(username=username)
        if password:
            user.set_password(password)
        if rename:
            user.username = rename
        user.is_active = not inactive
        user.save()
        if email is not None:
            EmailAddress.objects.filter(user=user).delete()
            user.email = email
            user.save()
            if email:
                EmailAddress.objects.create(user=user, email=email, verified=email_verified, primary=True)
        if groups is not None:
            names = [name for name in groups.split(",") if name]
            user.groups.set([Group.objects.get_or_create(name=name)[0] for name in names])
        self.stdout.write(str(user.pk))
