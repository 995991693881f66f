"""`manage.py budget_set (--group NAME | --user USERNAME) (--tokens N | --usd AMOUNT) --per day|month`, or
`--clear`: set or remove a budget (docs/teams.md, "Budgets")."""

from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from ...models import Budget
from ...teams.budget_settings import budget_clear, budget_set

# Beyond this an amount is surely a typo (and Budget.amount holds 12 digits before the point).
MAX_AMOUNT = Decimal(10**12)


class Command(BaseCommand):
    help = (
        "Set a budget of a group (a cap on each member) or of a user, in tokens or USD (the catalog's"
        " prices) per UTC day or calendar month; --clear removes it (both periods' without --per)."
    )

    def add_arguments(self, parser) -> None:
        subject = parser.add_mutually_exclusive_group(required=True)
        subject.add_argument("--group", metavar="NAME", help="A group's name: each member gets this cap.")
        subject.add_argument(
            "--user", metavar="USERNAME", help="A user's own budget, instead of their groups'."
        )
        cap = parser.add_mutually_exclusive_group()
        cap.add_argument("--tokens", metavar="N", help="A cap in tokens (a whole number).")
        cap.add_argument("--usd", metavar="AMOUNT", help="A cap in USD, at the catalog's prices.")
        cap.add_argument("--clear", action="store_true", help="Remove the budget instead.")
        parser.add_argument("--per", choices=Budget.Period.values, help="The period: day or month (UTC).")

    def handle(self, *args, **options) -> None:
        subject, named = self._subject(options)
        if options["clear"]:
            removed = budget_clear(**subject, period=options["per"])
            periods = f"per {options['per']}" if options["per"] else "of any period"
            self.stdout.write(f"Removed {removed} budget(s) {periods} of {named}.")
            return
        if options["tokens"] is None and options["usd"] is None:
            raise CommandError("Give --tokens N or --usd AMOUNT (or --clear).")
        if options["per"] is None:
            raise CommandError("Give --per day or --per month.")
        unit = Budget.Unit.TOKENS if options["tokens"] is not None else Budget.Unit.USD
        amount = self._amount(options["tokens"] if unit == Budget.Unit.TOKENS else options["usd"], unit)
        try:
            budget = budget_set(**subject, unit=unit, amount=amount, period=options["per"])
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(f"Budget set: {budget}.")

    def _subject(self, options: dict) -> tuple[dict, str]:
        if options["group"] is not None:
            group = Group.objects.filter(name=options["group"]).first()
            if group is None:
                raise CommandError(f"No group named {options['group']!r}.")
            return {"group": group}, f"group {group.name}"
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"No user named {options['user']!r}.")
        return {"user_id": user.pk}, f"user {user.get_username()}"

    def _amount(self, text: str, unit: str) -> Decimal:
        flag = "--tokens" if unit == Budget.Unit.TOKENS else "--usd"
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise CommandError(f"{flag} must be a number, not {text[:40]!r}.") from None
        if not amount.is_finite() or amount < 0 or amount > MAX_AMOUNT:
            raise CommandError(f"{flag} must be between 0 and {MAX_AMOUNT:,}.")
        if unit == Budget.Unit.TOKENS and amount != amount.to_integral_value():
            raise CommandError("--tokens must be a whole number.")
        if unit == Budget.Unit.USD and amount != amount.quantize(Decimal("0.00000001")):
            raise CommandError("--usd has at most 8 decimal places.")
        return amount
