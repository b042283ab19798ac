"""Hashed management-API tokens replace DRF's authtoken (plain-text keys that never expired).

Existing authtoken keys keep working once more, stored hashed with the default lifetime from
now; then the plain-text table is dropped so no key is left readable in the database.
"""

import hashlib
from datetime import timedelta

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def import_legacy_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if "authtoken_token" not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("accounts", "ApiToken")
    from django.utils import timezone

    expires = timezone.now() + timedelta(days=getattr(settings, "API_TOKEN_TTL_DAYS", 90))
    with connection.cursor() as cursor:
        cursor.execute("SELECT key, user_id FROM authtoken_token")
        rows = cursor.fetchall()
    ApiToken.objects.bulk_create(
        [
            ApiToken(
                user_id=user_id,
                name="migrated from authtoken",
                prefix=key[:6],
                token_hash=hashlib.sha256(key.encode()).hexdigest(),
                expires_at=expires,
            )
            for key, user_id in rows
        ]
    )
    schema_editor.execute("DROP TABLE authtoken_token")


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='ApiToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(blank=True, max_length=120)),
                ('prefix', models.CharField(max_length=16)),
                ('token_hash', models.CharField(max_length=64, unique=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('expires_at', models.DateTimeField()),
                ('last_used_at', models.DateTimeField(blank=True, null=True)),
                ('revoked_at', models.DateTimeField(blank=True, null=True)),
                ('revoked_reason', models.CharField(blank=True, choices=[('user', 'by its owner'), ('operator', 'by an operator'), ('password_change', 'password changed'), ('password_reset', 'password reset')], max_length=32)),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='api_tokens', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'indexes': [models.Index(fields=['user', '-created_at'], name='accounts_ap_user_id_0ad77e_idx')],
            },
        ),
        migrations.RunPython(import_legacy_tokens, migrations.RunPython.noop),
    ]
