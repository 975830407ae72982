# Extension table `lease_invitations` (issue 10): see apps/leasing/models.py LeaseInvitation.

import django.contrib.postgres.functions
import django.db.models.deletion
import django.db.models.functions.datetime
import django.utils.timezone
import uuid
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('leasing', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='LeaseInvitation',
            fields=[
                ('id', models.UUIDField(db_column='invitation_id', db_default=django.contrib.postgres.functions.RandomUUID(), default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('is_primary', models.BooleanField(db_default=False, default=False)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('accepted', 'Accepted'), ('declined', 'Declined'), ('revoked', 'Revoked'), ('expired', 'Expired')], db_default='pending', default='pending', max_length=8)),
                ('tenant_profile', models.JSONField(blank=True, null=True)),
                ('created_at', models.DateTimeField(db_column='created_at', db_default=django.db.models.functions.datetime.Now(), default=django.utils.timezone.now, editable=False, null=True)),
                ('responded_at', models.DateTimeField(blank=True, null=True)),
                ('expires_at', models.DateTimeField()),
                ('invited_by', models.ForeignKey(blank=True, db_column='invited_by', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='sent_lease_invitations', to=settings.AUTH_USER_MODEL)),
                ('invited_user', models.ForeignKey(db_column='invited_user_id', db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='lease_invitations', to=settings.AUTH_USER_MODEL)),
                ('lease', models.ForeignKey(db_column='lease_id', on_delete=django.db.models.deletion.CASCADE, related_name='invitations', to='leasing.lease')),
            ],
            options={
                'db_table': 'lease_invitations',
                'indexes': [models.Index(fields=['invited_user', 'status'], name='idx_lease_invitations_user')],
                'constraints': [models.CheckConstraint(condition=models.Q(('status__in', ['pending', 'accepted', 'declined', 'revoked', 'expired'])), name='lease_invitations_status_valid'), models.UniqueConstraint(condition=models.Q(('status', 'pending')), fields=('lease', 'invited_user'), name='lease_invitations_one_pending')],
            },
        ),
    ]
