BEGIN TRANSACTION;
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO "alembic_version" VALUES('0002');
CREATE TABLE channel_settings (
	channel_id BIGINT NOT NULL, 
	guild_id BIGINT, 
	spoilers BOOLEAN NOT NULL, 
	default_steps INTEGER, 
	default_size VARCHAR(20), 
	max_count INTEGER, 
	updated_ms BIGINT NOT NULL, 
	PRIMARY KEY (channel_id)
);
INSERT INTO "channel_settings" VALUES(42,1,1,3,NULL,NULL,1700000000000);
CREATE TABLE images (
	id VARCHAR(48) NOT NULL, 
	task_id VARCHAR(40) NOT NULL, 
	job_id VARCHAR(32) NOT NULL, 
	"index" INTEGER NOT NULL, 
	path TEXT NOT NULL, 
	seed BIGINT NOT NULL, 
	infotext TEXT NOT NULL, 
	width INTEGER NOT NULL, 
	height INTEGER NOT NULL, 
	parent_image_id VARCHAR(48), 
	kept BOOLEAN NOT NULL, 
	deleted BOOLEAN NOT NULL, 
	deleted_ms BIGINT, 
	created_ms BIGINT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(task_id) REFERENCES tasks (id) ON DELETE CASCADE, 
	UNIQUE (task_id, "index")
);
INSERT INTO "images" VALUES('0123456789abcdef.0.0','0123456789abcdef.0','0123456789abcdef',0,'images/0123456789abcdef/0-0-7.png',7,'a fox
Steps: 3, Seed: 7',64,64,NULL,1,0,NULL,1700000000900);
CREATE TABLE jobs (
	id VARCHAR(32) NOT NULL, 
	owner VARCHAR(100) NOT NULL, 
	origin TEXT NOT NULL, 
	action VARCHAR(30) NOT NULL, 
	spec TEXT NOT NULL, 
	parent_job_id VARCHAR(32), 
	status VARCHAR(20) NOT NULL, 
	created_ms BIGINT NOT NULL, 
	updated_ms BIGINT NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "jobs" VALUES('0123456789abcdef','cli:ann','{"source":"cli"}','generate','a fox | a wolf',NULL,'partial',1700000000000,1700000001000);
INSERT INTO "jobs" VALUES('fedcba9876543210','cli:ann','{"source":"cli"}','rerun','rerun of 0123456789abcdef','0123456789abcdef','queued',1700000002000,1700000002000);
CREATE TABLE tasks (
	id VARCHAR(40) NOT NULL, 
	job_id VARCHAR(32) NOT NULL, 
	"index" INTEGER NOT NULL, 
	kind VARCHAR(10) NOT NULL, 
	label TEXT NOT NULL, 
	request TEXT NOT NULL, 
	parent_image_id VARCHAR(48), 
	status VARCHAR(20) NOT NULL, 
	worker VARCHAR(64), 
	tries INTEGER NOT NULL, 
	submitted_ms BIGINT NOT NULL, 
	started_ms BIGINT, 
	finished_ms BIGINT, 
	error TEXT, 
	PRIMARY KEY (id), 
	FOREIGN KEY(job_id) REFERENCES jobs (id) ON DELETE CASCADE
);
INSERT INTO "tasks" VALUES('0123456789abcdef.0','0123456789abcdef',0,'txt2img','prompt 1','{"kind": "txt2img", "prompt": "a fox", "seed": 7}',NULL,'done','gpu0',1,1700000000000,1700000000100,1700000000900,NULL);
INSERT INTO "tasks" VALUES('0123456789abcdef.1','0123456789abcdef',1,'txt2img','prompt 2','{"kind": "txt2img", "prompt": "a wolf", "seed": 8}',NULL,'failed',NULL,1,1700000000000,NULL,NULL,'CUDA out of memory');
INSERT INTO "tasks" VALUES('fedcba9876543210.0','fedcba9876543210',0,'txt2img','prompt 1','{"kind": "txt2img", "prompt": "a fox", "seed": 9}',NULL,'queued',NULL,0,1700000002000,NULL,NULL,NULL);
CREATE INDEX ix_jobs_created_ms ON jobs (created_ms);
CREATE INDEX ix_jobs_owner ON jobs (owner);
CREATE INDEX ix_tasks_job_id ON tasks (job_id);
CREATE INDEX ix_tasks_status ON tasks (status);
CREATE INDEX ix_images_job_id ON images (job_id);
CREATE INDEX ix_images_parent_image_id ON images (parent_image_id);
CREATE INDEX ix_images_purge ON images (kept, deleted);
CREATE INDEX ix_images_task_id ON images (task_id);
COMMIT;
