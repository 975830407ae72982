"""The seed's `idx_transactions_payment_status`, created with SQL.

Django refuses `Meta.indexes` names longer than 30 characters (models.E034) and this
name has 31; other services query the schema by the seed's index names, so we keep
the name and create the index here, reversibly.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("finance", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql="CREATE INDEX idx_transactions_payment_status ON transactions (payment_status);",
            reverse_sql="DROP INDEX IF EXISTS idx_transactions_payment_status;",
        )
    ]
