"""`DeviceSettings.want_locked_clocks` becomes a choice of three: None (as the device's own config
says), True, False. A saved False meant "not set" before (the device's own value won), so it
becomes None; True stays."""

from django.db import migrations, models


def false_was_unset(apps, schema_editor):
    apps.get_model("advisors", "DeviceSettings").objects.filter(want_locked_clocks=False).update(
        want_locked_clocks=None)


def unset_was_false(apps, schema_editor):
    apps.get_model("advisors", "DeviceSettings").objects.filter(want_locked_clocks=None).update(
        want_locked_clocks=False)


class Migration(migrations.Migration):

    dependencies = [
        ("advisors", "0003_action_dry_run"),
    ]

    operations = [
        migrations.AlterField(
            model_name="devicesettings",
            name="want_locked_clocks",
            field=models.BooleanField(blank=True, default=None, null=True,
                                      help_text="locked GPU clocks required (empty: as the device says)"),
        ),
        migrations.RunPython(false_was_unset, unset_was_false),
    ]
