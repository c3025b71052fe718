"""Deployments: deployments, their predictors' status and events; the local backend's replica processes; deployments in a model's history

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 13:46:26.355709
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('deployment_events',
    sa.Column('event_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('deployment', sa.String(length=64), nullable=False),
    sa.Column('predictor', sa.String(length=32), nullable=True),
    sa.Column('at', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_deployment_events'))
    )
    with op.batch_alter_table('deployment_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deployment_events_deployment_event_id'), ['deployment', 'event_id'], unique=False)

    op.create_table('deployment_predictors',
    sa.Column('deployment', sa.String(length=64), nullable=False),
    sa.Column('predictor', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('desired_replicas', sa.Integer(), nullable=False),
    sa.Column('ready_replicas', sa.Integer(), nullable=False),
    sa.Column('serving', sa.Text(), nullable=True),
    sa.Column('target', sa.Text(), nullable=True),
    sa.Column('failed_revision', sa.String(length=64), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('replicas', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('deployment', 'predictor', name=op.f('pk_deployment_predictors'))
    )
    op.create_table('deployments',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('namespace', sa.String(length=64), nullable=False),
    sa.Column('source_kind', sa.String(length=32), nullable=False),
    sa.Column('spec', sa.Text(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=256), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_deployments'))
    )
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deployments_namespace_name'), ['namespace', 'name'], unique=True)

    op.create_table('local_replicas',
    sa.Column('replica_id', sa.String(length=64), nullable=False),
    sa.Column('workload', sa.String(length=128), nullable=False),
    sa.Column('revision', sa.String(length=64), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('pid_started', sa.BigInteger(), nullable=True),
    sa.Column('ports', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.BigInteger(), nullable=False),
    sa.Column('restarts', sa.Integer(), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('replica_id', name=op.f('pk_local_replicas'))
    )
    with op.batch_alter_table('local_replicas', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_local_replicas_workload'), ['workload'], unique=False)

    with op.batch_alter_table('model_history', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deployment', sa.String(length=128), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('model_history', schema=None) as batch_op:
        batch_op.drop_column('deployment')

    with op.batch_alter_table('local_replicas', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_local_replicas_workload'))

    op.drop_table('local_replicas')
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deployments_namespace_name'))

    op.drop_table('deployments')
    op.drop_table('deployment_predictors')
    with op.batch_alter_table('deployment_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deployment_events_deployment_event_id'))

    op.drop_table('deployment_events')
