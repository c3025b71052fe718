"""Workspaces: each user's servers (desired and observed state, the workload launched) and their events

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 10:00:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('workspace_events',
    sa.Column('event_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=256), nullable=False),
    sa.Column('server', sa.String(length=32), nullable=False),
    sa.Column('at', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_workspace_events'))
    )
    with op.batch_alter_table('workspace_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workspace_events_username_server_event_id'), ['username', 'server', 'event_id'], unique=False)

    op.create_table('workspace_servers',
    sa.Column('username', sa.String(length=256), nullable=False),
    sa.Column('server', sa.String(length=32), nullable=False),
    sa.Column('environment', sa.String(length=63), nullable=False),
    sa.Column('desired', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('progress', sa.String(length=256), nullable=True),
    sa.Column('workload', sa.String(length=300), nullable=False),
    sa.Column('launch', sa.Text(), nullable=True),
    sa.Column('token_id', sa.Integer(), nullable=True),
    sa.Column('started_at', sa.BigInteger(), nullable=True),
    sa.Column('stopped_at', sa.BigInteger(), nullable=True),
    sa.Column('last_activity', sa.BigInteger(), nullable=True),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('username', 'server', name=op.f('pk_workspace_servers'))
    )
    with op.batch_alter_table('workspace_servers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workspace_servers_workload'), ['workload'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('workspace_servers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workspace_servers_workload'))

    op.drop_table('workspace_servers')
    with op.batch_alter_table('workspace_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workspace_events_username_server_event_id'))

    op.drop_table('workspace_events')
