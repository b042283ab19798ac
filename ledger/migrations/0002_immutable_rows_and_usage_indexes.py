"""Ledger rows are append-only in the database too, and usage gets its breakdown indexes.

A BEFORE UPDATE OR DELETE trigger rejects any change to transactions, postings and usage
records (written once, at settlement), whoever issues it: raw SQL, another client, a bug.
TRUNCATE is not a row change, so test teardown still empties the tables. SQLite (the
local demo) relies on the model layer's guard alone.
"""

from django.db import migrations, models

PROTECTED = ("ledger_transaction", "ledger_posting", "ledger_usagerecord")

FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are immutable: % on % refused; post a compensating transaction',
        TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
"""


def _install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION, params=None)
    for table in PROTECTED:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_reject_change()"
        )


def _remove(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in PROTECTED:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_immutable ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS ledger_reject_change()")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("ledger", "0001_initial"),
        ("projects", "0001_initial"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="usagerecord",
            index=models.Index(
                fields=["org", "model", "created_at"], name="usage_org_model_created_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="usagerecord",
            index=models.Index(
                fields=["org", "upstream", "created_at"], name="usage_org_upstream_created_idx"
            ),
        ),
        migrations.RunPython(_install, _remove),
    ]
