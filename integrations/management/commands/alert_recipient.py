from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from integrations.models import AlertRecipient, normalize_phone


class Command(BaseCommand):
    help = "Give an admin a phone number for incident SMS: alert_recipient USERNAME PHONE."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("phone", help="e.g. +33612345678")
        parser.add_argument("--inactive", action="store_true")

    def handle(self, *args, username, phone, inactive, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        if not user.is_staff:
            raise CommandError(f"{username} is not an admin (staff): only admins get SMS alerts")
        try:
            phone = normalize_phone(phone)
        except ValidationError as exc:
            raise CommandError(exc.messages[0]) from None
        AlertRecipient.objects.update_or_create(
            user=user, defaults={"phone": phone, "active": not inactive}
        )
        self.stdout.write(f"{username}: SMS alerts to {phone}")
