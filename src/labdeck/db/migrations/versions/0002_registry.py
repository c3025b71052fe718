"""The model registry: registered models, versions, tags, aliases and their history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 11:50:08.458965
"""

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('registered_models',
    sa.Column('model_pk', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('last_updated_time', sa.BigInteger(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('user_id', sa.String(length=256), nullable=True),
    sa.PrimaryKeyConstraint('model_pk', name=op.f('pk_registered_models')),
    sa.UniqueConstraint('name', name=op.f('uq_registered_models_name'))
    )
    op.create_table('model_history',
    sa.Column('event_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('model_pk', sa.Integer(), nullable=False),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.Column('actor', sa.String(length=256), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('alias', sa.String(length=256), nullable=True),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.Column('from_version', sa.Integer(), nullable=True),
    sa.Column('to_version', sa.Integer(), nullable=True),
    sa.Column('from_stage', sa.String(length=20), nullable=True),
    sa.Column('to_stage', sa.String(length=20), nullable=True),
    sa.Column('from_name', sa.String(length=256), nullable=True),
    sa.Column('to_name', sa.String(length=256), nullable=True),
    sa.ForeignKeyConstraint(['model_pk'], ['registered_models.model_pk'], name=op.f('fk_model_history_model_pk_registered_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_model_history'))
    )
    with op.batch_alter_table('model_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_history_model_pk_event_id'), ['model_pk', 'event_id'], unique=False)

    op.create_table('model_versions',
    sa.Column('model_pk', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('creation_time', sa.BigInteger(), nullable=False),
    sa.Column('last_updated_time', sa.BigInteger(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('user_id', sa.String(length=256), nullable=True),
    sa.Column('current_stage', sa.String(length=20), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('storage_location', sa.Text(), nullable=True),
    sa.Column('run_id', sa.String(length=32), nullable=True),
    sa.Column('run_link', sa.Text(), nullable=True),
    sa.Column('model_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('status_message', sa.Text(), nullable=True),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['model_pk'], ['registered_models.model_pk'], name=op.f('fk_model_versions_model_pk_registered_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_pk', 'version', name=op.f('pk_model_versions'))
    )
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_versions_run_id'), ['run_id'], unique=False)

    op.create_table('registered_model_tags',
    sa.Column('model_pk', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['model_pk'], ['registered_models.model_pk'], name=op.f('fk_registered_model_tags_model_pk_registered_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_pk', 'key', name=op.f('pk_registered_model_tags'))
    )
    with op.batch_alter_table('registered_model_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_registered_model_tags_key_value'), ['key', 'value'], unique=False)

    op.create_table('model_version_tags',
    sa.Column('model_pk', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=250), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['model_pk', 'version'], ['model_versions.model_pk', 'model_versions.version'], name=op.f('fk_model_version_tags_model_pk_model_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_pk', 'version', 'key', name=op.f('pk_model_version_tags'))
    )
    op.create_table('registered_model_aliases',
    sa.Column('model_pk', sa.Integer(), nullable=False),
    sa.Column('alias', sa.String(length=256), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['model_pk', 'version'], ['model_versions.model_pk', 'model_versions.version'], name=op.f('fk_registered_model_aliases_model_pk_model_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_pk', 'alias', name=op.f('pk_registered_model_aliases'))
    )


def downgrade() -> None:
    op.drop_table('registered_model_aliases')
    op.drop_table('model_version_tags')
    with op.batch_alter_table('registered_model_tags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_registered_model_tags_key_value'))

    op.drop_table('registered_model_tags')
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_versions_run_id'))

    op.drop_table('model_versions')
    with op.batch_alter_table('model_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_history_model_pk_event_id'))

    op.drop_table('model_history')
    op.drop_table('registered_models')
