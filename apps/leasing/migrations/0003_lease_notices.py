# Extension table `lease_notices` (issue 11): see apps/leasing/models.py LeaseNotice.

import django.db.models.deletion
import django.db.models.functions.datetime
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('leasing', '0002_lease_invitations'),
    ]

    operations = [
        migrations.CreateModel(
            name='LeaseNotice',
            fields=[
                ('id', models.BigAutoField(db_column='notice_id', primary_key=True, serialize=False)),
                ('notice', models.CharField(max_length=32)),
                ('due_on', models.DateField()),
                ('created_at', models.DateTimeField(db_column='created_at', db_default=django.db.models.functions.datetime.Now(), default=django.utils.timezone.now, editable=False, null=True)),
                ('lease', models.ForeignKey(db_column='lease_id', db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='notices', to='leasing.lease')),
            ],
            options={
                'db_table': 'lease_notices',
                'constraints': [models.UniqueConstraint(fields=('lease', 'notice'), name='lease_notices_once')],
            },
        ),
    ]
