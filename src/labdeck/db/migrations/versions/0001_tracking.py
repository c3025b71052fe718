"""Tracking tables, and the Default experiment (id 0) that MLflow clients expect.

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 11:04:47.649848
"""

import time

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('experiments',
    sa.Column('experiment_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('artifact_location', sa.Text(), nullable=False),
    sa.Column('lifecycle_stage', sa.String(length=32), nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('last_update_time', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('experiment_id', name=op.f('pk_experiments')),
    sa.UniqueConstraint('name', name=op.f('uq_experiments_name'))
    )
    op.create_table('datasets',
    sa.Column('dataset_uuid', sa.String(length=36), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('digest', sa.String(length=36), nullable=False),
    sa.Column('source_type', sa.String(length=36), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('schema', sa.Text(), nullable=True),
    sa.Column('profile', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.experiment_id'], name=op.f('fk_datasets_experiment_id_experiments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('dataset_uuid', name=op.f('pk_datasets')),
    sa.UniqueConstraint('experiment_id', 'name', 'digest', name=op.f('uq_datasets_experiment_id_name_digest'))
    )
    op.create_table('experiment_tags',
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.experiment_id'], name=op.f('fk_experiment_tags_experiment_id_experiments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('experiment_id', 'key', name=op.f('pk_experiment_tags'))
    )
    op.create_table('logged_models',
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('artifact_location', sa.Text(), nullable=False),
    sa.Column('creation_timestamp_ms', sa.BigInteger(), nullable=False),
    sa.Column('last_updated_timestamp_ms', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('lifecycle_stage', sa.String(length=32), nullable=False),
    sa.Column('model_type', sa.String(length=500), nullable=True),
    sa.Column('source_run_id', sa.String(length=32), nullable=True),
    sa.Column('status_message', sa.Text(), nullable=True),
    sa.Column('creator_id', sa.String(length=256), nullable=True),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.experiment_id'], name=op.f('fk_logged_models_experiment_id_experiments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_id', name=op.f('pk_logged_models'))
    )
    with op.batch_alter_table('logged_models', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_logged_models_experiment_id_creation_timestamp_ms'), ['experiment_id', 'creation_timestamp_ms'], unique=False)

    op.create_table('runs',
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=250), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.String(length=256), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('start_time', sa.BigInteger(), nullable=False),
    sa.Column('end_time', sa.BigInteger(), nullable=True),
    sa.Column('deleted_time', sa.BigInteger(), nullable=True),
    sa.Column('lifecycle_stage', sa.String(length=32), nullable=False),
    sa.Column('artifact_uri', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.experiment_id'], name=op.f('fk_runs_experiment_id_experiments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uuid', name=op.f('pk_runs'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runs_experiment_id_lifecycle_stage_start_time_run_uuid'), ['experiment_id', 'lifecycle_stage', 'start_time', 'run_uuid'], unique=False)

    op.create_table('latest_metrics',
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('is_nan', sa.Boolean(), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=True),
    sa.Column('dataset_name', sa.String(length=500), nullable=True),
    sa.Column('dataset_digest', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['run_uuid'], ['runs.run_uuid'], name=op.f('fk_latest_metrics_run_uuid_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uuid', 'key', name=op.f('pk_latest_metrics')),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('latest_metrics', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_latest_metrics_key_value'), ['key', 'value'], unique=False)

    op.create_table('logged_model_metrics',
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('is_nan', sa.Boolean(), nullable=False),
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('dataset_name', sa.String(length=500), nullable=True),
    sa.Column('dataset_digest', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['run_uuid'], ['runs.run_uuid'], name=op.f('fk_logged_model_metrics_run_uuid_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_id', 'key', 'timestamp', 'step', 'value', 'is_nan', 'run_uuid', name=op.f('pk_logged_model_metrics'))
    )
    op.create_table('logged_model_params',
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['logged_models.model_id'], name=op.f('fk_logged_model_params_model_id_logged_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_id', 'key', name=op.f('pk_logged_model_params'))
    )
    op.create_table('logged_model_tags',
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['logged_models.model_id'], name=op.f('fk_logged_model_tags_model_id_logged_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_id', 'key', name=op.f('pk_logged_model_tags'))
    )
    op.create_table('metrics',
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('is_nan', sa.Boolean(), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=True),
    sa.Column('dataset_name', sa.String(length=500), nullable=True),
    sa.Column('dataset_digest', sa.String(length=36), nullable=True),
    sa.ForeignKeyConstraint(['run_uuid'], ['runs.run_uuid'], name=op.f('fk_metrics_run_uuid_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uuid', 'key', 'timestamp', 'step', 'value', 'is_nan', name=op.f('pk_metrics')),
    sqlite_with_rowid=False
    )
    op.create_table('params',
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_uuid'], ['runs.run_uuid'], name=op.f('fk_params_run_uuid_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uuid', 'key', name=op.f('pk_params')),
    sqlite_with_rowid=False
    )
    op.create_table('run_dataset_input_tags',
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('dataset_uuid', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('value', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['dataset_uuid'], ['datasets.dataset_uuid'], name=op.f('fk_run_dataset_input_tags_dataset_uuid_datasets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_uuid'], ['runs.run_uuid'], name=op.f('fk_run_dataset_input_tags_run_uuid_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uuid', 'dataset_uuid', 'key', name=op.f('pk_run_dataset_input_tags'))
    )
    op.create_table('run_dataset_inputs',
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('dataset_uuid', sa.String(length=36), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['dataset_uuid'], ['datasets.dataset_uuid'], name=op.f('fk_run_dataset_inputs_dataset_uuid_datasets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_uuid'], ['runs.run_uuid'], name=op.f('fk_run_dataset_inputs_run_uuid_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uuid', 'dataset_uuid', name=op.f('pk_run_dataset_inputs'))
    )
    op.create_table('run_model_inputs',
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['run_uuid'], ['runs.run_uuid'], name=op.f('fk_run_model_inputs_run_uuid_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uuid', 'model_id', name=op.f('pk_run_model_inputs'))
    )
    op.create_table('run_model_outputs',
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['run_uuid'], ['runs.run_uuid'], name=op.f('fk_run_model_outputs_run_uuid_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uuid', 'model_id', name=op.f('pk_run_model_outputs'))
    )
    op.create_table('tags',
    sa.Column('run_uuid', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_uuid'], ['runs.run_uuid'], name=op.f('fk_tags_run_uuid_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_uuid', 'key', name=op.f('pk_tags')),
    sqlite_with_rowid=False
    )
    experiments = sa.table(
        "experiments",
        sa.column("experiment_id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("artifact_location", sa.Text),
        sa.column("lifecycle_stage", sa.String),
        sa.column("creation_time", sa.BigInteger),
        sa.column("last_update_time", sa.BigInteger),
    )
    now = int(time.time() * 1000)
    op.bulk_insert(experiments, [{
        "experiment_id": 0, "name": "Default", "artifact_location": "mlflow-artifacts:/0",
        "lifecycle_stage": "active", "creation_time": now, "last_update_time": now,
    }])


def downgrade() -> None:
    op.drop_table('tags')
    op.drop_table('run_model_outputs')
    op.drop_table('run_model_inputs')
    op.drop_table('run_dataset_inputs')
    op.drop_table('run_dataset_input_tags')
    op.drop_table('params')
    op.drop_table('metrics')
    op.drop_table('logged_model_tags')
    op.drop_table('logged_model_params')
    op.drop_table('logged_model_metrics')
    with op.batch_alter_table('latest_metrics', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_latest_metrics_key_value'))

    op.drop_table('latest_metrics')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runs_experiment_id_lifecycle_stage_start_time_run_uuid'))

    op.drop_table('runs')
    with op.batch_alter_table('logged_models', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_logged_models_experiment_id_creation_timestamp_ms'))

    op.drop_table('logged_models')
    op.drop_table('experiment_tags')
    op.drop_table('datasets')
    op.drop_table('experiments')
