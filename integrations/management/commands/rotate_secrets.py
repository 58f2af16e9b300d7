"""``manage.py rotate_secrets``: re-encrypt stored secrets under the current cipher and key.

Run it after putting a new key first in SECRET_KEYS (or changing SECRET_CIPHER); once it
reports nothing left to rotate, the old key can be removed. Safe to re-run and to run
while the site is up: each batch is its own transaction and each row is only updated if
it still holds the ciphertext that was read, so a concurrent edit is never overwritten.
It prints counts, never values.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.management.base import BaseCommand, CommandError
from django.db import models, router, transaction
from django.db.models.functions import Cast
from django.db.models.lookups import Exact

from integrations import secrets
from integrations.fields import EncryptedTextField, encrypted_fields


@dataclass
class Counts:
    rotated: int = 0
    current: int = 0
    unreadable: int = 0
    changed_meanwhile: int = 0


def _raw(field: EncryptedTextField) -> Cast:
    # Cast to a plain TextField reads and compares the stored ciphertext, bypassing the
    # field's decryption and encryption.
    return Cast(field.name, models.TextField())


def rotate_field(
    model: type[models.Model], field: EncryptedTextField, *, dry_run: bool, batch_size: int
) -> Counts:
    counts = Counts()
    db = router.db_for_write(model)
    manager = model._base_manager.db_manager(db)
    stored = manager.annotate(_secret_raw=_raw(field)).filter(_secret_raw__gt="")
    last_pk = None
    while True:
        page = stored.order_by("pk")
        if last_pk is not None:
            page = page.filter(pk__gt=last_pk)
        rows = list(page.values_list("pk", "_secret_raw")[:batch_size])
        if not rows:
            return counts
        last_pk = rows[-1][0]
        with transaction.atomic(using=db):
            for pk, raw in rows:
                try:
                    if secrets.is_encrypted(raw):
                        if not secrets.needs_rotation(raw):
                            counts.current += 1
                            continue
                        new = secrets.rotate(raw)
                    else:
                        new = secrets.encrypt(raw)  # plaintext left from before encryption
                except secrets.SecretDecryptionError:
                    counts.unreadable += 1
                    continue
                if dry_run:
                    counts.rotated += 1
                    continue
                updated = (
                    manager.filter(pk=pk)
                    .filter(Exact(_raw(field), raw))
                    .update(**{field.attname: models.Value(new, output_field=models.TextField())})
                )
                if updated:
                    counts.rotated += 1
                else:
                    counts.changed_meanwhile += 1


class Command(BaseCommand):
    help = "Re-encrypt stored secrets under the current SECRET_CIPHER and first SECRET_KEYS key."

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would change; write nothing."
        )
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, dry_run: bool, batch_size: int, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        ring = secrets.get_keyring()
        self.stdout.write(
            f"Target: cipher {ring.cipher}, key id {ring.current.key_id}"
            + (" (dry run: nothing is written)" if dry_run else "")
        )
        verb = "to re-encrypt" if dry_run else "re-encrypted"
        unreadable = 0
        for model, field in encrypted_fields():
            counts = rotate_field(model, field, dry_run=dry_run, batch_size=batch_size)
            unreadable += counts.unreadable
            line = (
                f"{model._meta.label}.{field.name}: {counts.rotated} {verb}, "
                f"{counts.current} already current, {counts.unreadable} unreadable"
            )
            if counts.changed_meanwhile:
                line += f", {counts.changed_meanwhile} changed meanwhile (run again)"
            self.stdout.write(line)
        if unreadable:
            raise CommandError(
                f"{unreadable} value(s) could not be decrypted (unknown key id or tampered "
                "data); restore the missing key in SECRET_KEYS and run again."
            )
