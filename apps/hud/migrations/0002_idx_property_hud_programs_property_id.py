"""The seed's `idx_property_hud_programs_property_id`, created with SQL.

Django refuses `Meta.indexes` names longer than 30 characters (models.E034) and this
name has 36; other services query the schema by the seed's index names, so we keep
the name and create the index here, reversibly.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("hud", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql="CREATE INDEX idx_property_hud_programs_property_id ON property_hud_programs (property_id);",
            reverse_sql="DROP INDEX IF EXISTS idx_property_hud_programs_property_id;",
        )
    ]
