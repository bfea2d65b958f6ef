"""Tables of the job store. Schema changes go through Alembic migrations (``migrations/versions``)."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from jobs.models import JobStatus, TaskStatus


class Base(DeclarativeBase):
    pass


def _status(enum: type[StrEnum]) -> Enum:
    """A status column: the enum's values in a VARCHAR(20), as the first schema stored them (no CHECK, no migration)."""
    return Enum(enum, native_enum=False, create_constraint=False, length=20,
                values_callable=lambda members: [m.value for m in members])


class JobRow(Base):
    """One user request (a generation, a sweep, or a derived job such as "upscale the kept images")."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100), index=True)
    origin: Mapped[str] = mapped_column(Text)  # JSON of common.tasks.Origin
    action: Mapped[str] = mapped_column(String(30))  # generate, upscale-kept, img2img-kept, rerun
    spec: Mapped[str] = mapped_column(Text, default="")  # what the user typed (sweep text) or a description
    parent_job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[JobStatus] = mapped_column(_status(JobStatus))
    created_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    updated_ms: Mapped[int] = mapped_column(BigInteger)

    tasks: Mapped[list[TaskRow]] = relationship(back_populates="job", cascade="all, delete-orphan",
                                                order_by="TaskRow.index")


class TaskRow(Base):
    """One WebUI call of a job."""

    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    label: Mapped[str] = mapped_column(Text, default="")
    request: Mapped[str] = mapped_column(Text)  # JSON of the request, images replaced by "sha256:<hex>" refs
    parent_image_id: Mapped[str | None] = mapped_column(String(48), nullable=True)
    status: Mapped[TaskStatus] = mapped_column(_status(TaskStatus), index=True)
    worker: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    submitted_ms: Mapped[int] = mapped_column(BigInteger)
    started_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    finished_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    job: Mapped[JobRow] = relationship(back_populates="tasks")
    images: Mapped[list[ImageRow]] = relationship(back_populates="task", cascade="all, delete-orphan",
                                                  order_by="ImageRow.index")


class ImageRow(Base):
    """One generated image; its PNG (with infotext) lives in the image store at ``path``."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("task_id", "index"), Index("ix_images_purge", "kept", "deleted"))

    id: Mapped[str] = mapped_column(String(48), primary_key=True)  # <task id>.<n>
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str] = mapped_column(String(32), index=True)
    index: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)  # relative to the image store
    seed: Mapped[int] = mapped_column(BigInteger)
    infotext: Mapped[str] = mapped_column(Text)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    parent_image_id: Mapped[str | None] = mapped_column(String(48), nullable=True, index=True)
    kept: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)

    task: Mapped[TaskRow] = relationship(back_populates="images")


class ChannelSettingsRow(Base):
    """Per-channel defaults and limits a community sets for its front end (e.g. with Discord's /settings)."""

    __tablename__ = "channel_settings"

    channel_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    guild_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    spoilers: Mapped[bool] = mapped_column(Boolean, default=False)
    default_steps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    default_size: Mapped[str | None] = mapped_column(String(20), nullable=True)
    max_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
