"""The outcomes written back and the outbox of events (``makemigrations``, its lists as tuples)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = (("salesbot_django", "0001_initial"),)

    operations = (
        migrations.CreateModel(
            name="AppliedOutcome",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("event_id", models.CharField(max_length=250, unique=True)),
                ("applied_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
        migrations.CreateModel(
            name="PendingEvent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("account", models.CharField(max_length=200)),
                ("entity", models.CharField(max_length=20)),
                ("record_id", models.CharField(max_length=200)),
                ("events", models.JSONField()),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("last_error", models.TextField(blank=True, default="")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
    )
