CREATE TABLE `accounts` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`created_at` integer DEFAULT (cast(unixepoch('subsecond') * 1000 as integer)) NOT NULL
);
--> statement-breakpoint
CREATE TABLE `api_keys` (
	`id` text PRIMARY KEY NOT NULL,
	`account_id` text NOT NULL,
	`name` text NOT NULL,
	`prefix` text NOT NULL,
	`key_hash` text NOT NULL,
	`created_at` integer DEFAULT (cast(unixepoch('subsecond') * 1000 as integer)) NOT NULL,
	`revoked_at` integer,
	`last_used_at` integer,
	FOREIGN KEY (`account_id`) REFERENCES `accounts`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `api_keys_hash` ON `api_keys` (`key_hash`);--> statement-breakpoint
CREATE INDEX `api_keys_account` ON `api_keys` (`account_id`);--> statement-breakpoint
CREATE TABLE `artifacts` (
	`id` text PRIMARY KEY NOT NULL,
	`account_id` text NOT NULL,
	`execution_id` text NOT NULL,
	`attempt` integer NOT NULL,
	`kind` text NOT NULL,
	`path` text NOT NULL,
	`size` integer NOT NULL,
	`sha256` text NOT NULL,
	`content_type` text NOT NULL,
	`encoding` text NOT NULL,
	`object_key` text NOT NULL,
	`created_at` integer DEFAULT (cast(unixepoch('subsecond') * 1000 as integer)) NOT NULL,
	`expires_at` integer NOT NULL,
	`deleted_at` integer,
	FOREIGN KEY (`execution_id`) REFERENCES `executions`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `artifacts_execution` ON `artifacts` (`execution_id`,`kind`,`path`);--> statement-breakpoint
CREATE INDEX `artifacts_expiry` ON `artifacts` (`expires_at`);--> statement-breakpoint
CREATE INDEX `artifacts_blob` ON `artifacts` (`account_id`,`sha256`);--> statement-breakpoint
CREATE TABLE `batches` (
	`id` text PRIMARY KEY NOT NULL,
	`account_id` text NOT NULL,
	`name` text,
	`total` integer DEFAULT 0 NOT NULL,
	`parallel` integer,
	`fail_fast` integer DEFAULT false NOT NULL,
	`metadata` text NOT NULL,
	`created_at` integer DEFAULT (cast(unixepoch('subsecond') * 1000 as integer)) NOT NULL,
	FOREIGN KEY (`account_id`) REFERENCES `accounts`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `batches_account_created` ON `batches` (`account_id`,`created_at`);--> statement-breakpoint
CREATE TABLE `blobs` (
	`account_id` text NOT NULL,
	`sha256` text NOT NULL,
	`size` integer NOT NULL,
	`encoding` text DEFAULT 'identity' NOT NULL,
	`object_key` text NOT NULL,
	`created_at` integer DEFAULT (cast(unixepoch('subsecond') * 1000 as integer)) NOT NULL,
	`last_used_at` integer DEFAULT (cast(unixepoch('subsecond') * 1000 as integer)) NOT NULL,
	`deleted_at` integer,
	PRIMARY KEY(`account_id`, `sha256`),
	FOREIGN KEY (`account_id`) REFERENCES `accounts`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `cache_records` (
	`account_id` text NOT NULL,
	`kind` text NOT NULL,
	`key` text NOT NULL,
	`detail` text NOT NULL,
	`hits` integer DEFAULT 0 NOT NULL,
	`misses` integer DEFAULT 0 NOT NULL,
	`created_at` integer DEFAULT (cast(unixepoch('subsecond') * 1000 as integer)) NOT NULL,
	`last_used_at` integer DEFAULT (cast(unixepoch('subsecond') * 1000 as integer)) NOT NULL,
	PRIMARY KEY(`account_id`, `kind`, `key`)
);
--> statement-breakpoint
CREATE TABLE `execution_metadata` (
	`execution_id` text NOT NULL,
	`account_id` text NOT NULL,
	`key` text NOT NULL,
	`value` text NOT NULL,
	PRIMARY KEY(`execution_id`, `key`),
	FOREIGN KEY (`execution_id`) REFERENCES `executions`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `execution_metadata_lookup` ON `execution_metadata` (`account_id`,`key`,`value`);--> statement-breakpoint
CREATE TABLE `executions` (
	`id` text PRIMARY KEY NOT NULL,
	`account_id` text NOT NULL,
	`batch_id` text,
	`pool` text NOT NULL,
	`status` text NOT NULL,
	`failure_kind` text,
	`exit_code` integer,
	`message` text,
	`attempt` integer DEFAULT 0 NOT NULL,
	`max_attempts` integer NOT NULL,
	`runtime` text NOT NULL,
	`script_name` text NOT NULL,
	`script_sha256` text NOT NULL,
	`script_size` integer NOT NULL,
	`script_key` text NOT NULL,
	`env_key` text NOT NULL,
	`requirements` text,
	`inputs` text NOT NULL,
	`args` text NOT NULL,
	`env` text NOT NULL,
	`limits` text NOT NULL,
	`metadata` text NOT NULL,
	`runner_id` text,
	`env_hit` integer,
	`build_seconds` real,
	`duration_ms` integer,
	`created_at` integer NOT NULL,
	`submitted_at` integer,
	`started_at` integer,
	`finished_at` integer,
	FOREIGN KEY (`account_id`) REFERENCES `accounts`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `executions_account_created` ON `executions` (`account_id`,`created_at`,`id`);--> statement-breakpoint
CREATE INDEX `executions_account_status` ON `executions` (`account_id`,`status`,`created_at`);--> statement-breakpoint
CREATE INDEX `executions_account_batch` ON `executions` (`account_id`,`batch_id`,`created_at`);--> statement-breakpoint
CREATE TABLE `log_chunks` (
	`execution_id` text NOT NULL,
	`attempt` integer NOT NULL,
	`seq` integer NOT NULL,
	`stream` text NOT NULL,
	`data` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`execution_id`, `attempt`, `seq`)
);
--> statement-breakpoint
CREATE TABLE `pools` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`created_at` integer DEFAULT (cast(unixepoch('subsecond') * 1000 as integer)) NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `pools_name_unique` ON `pools` (`name`);--> statement-breakpoint
CREATE TABLE `registration_tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`pool_id` text NOT NULL,
	`token_hash` text NOT NULL,
	`max_uses` integer,
	`uses` integer DEFAULT 0 NOT NULL,
	`expires_at` integer,
	`revoked_at` integer,
	`created_at` integer DEFAULT (cast(unixepoch('subsecond') * 1000 as integer)) NOT NULL,
	FOREIGN KEY (`pool_id`) REFERENCES `pools`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `registration_tokens_hash` ON `registration_tokens` (`token_hash`);--> statement-breakpoint
CREATE TABLE `runner_images` (
	`runner_id` text NOT NULL,
	`env_key` text NOT NULL,
	`built_at` integer DEFAULT (cast(unixepoch('subsecond') * 1000 as integer)) NOT NULL,
	PRIMARY KEY(`env_key`, `runner_id`)
);
--> statement-breakpoint
CREATE TABLE `runners` (
	`id` text PRIMARY KEY NOT NULL,
	`pool_id` text NOT NULL,
	`name` text NOT NULL,
	`token_hash` text NOT NULL,
	`slots` integer NOT NULL,
	`labels` text NOT NULL,
	`version` text NOT NULL,
	`active_jobs` integer DEFAULT 0 NOT NULL,
	`draining` integer DEFAULT false NOT NULL,
	`drain_requested` integer DEFAULT false NOT NULL,
	`server_id` text,
	`registered_at` integer DEFAULT (cast(unixepoch('subsecond') * 1000 as integer)) NOT NULL,
	`last_seen_at` integer DEFAULT (cast(unixepoch('subsecond') * 1000 as integer)) NOT NULL,
	FOREIGN KEY (`pool_id`) REFERENCES `pools`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `runners_token` ON `runners` (`token_hash`);--> statement-breakpoint
CREATE INDEX `runners_pool_seen` ON `runners` (`pool_id`,`last_seen_at`);--> statement-breakpoint
CREATE TABLE `servers` (
	`id` text PRIMARY KEY NOT NULL,
	`pool_id` text NOT NULL,
	`provider_id` text,
	`name` text NOT NULL,
	`status` text NOT NULL,
	`runner_id` text,
	`registration_token_id` text,
	`created_at` integer DEFAULT (cast(unixepoch('subsecond') * 1000 as integer)) NOT NULL,
	`deleted_at` integer,
	FOREIGN KEY (`pool_id`) REFERENCES `pools`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `servers_pool` ON `servers` (`pool_id`,`status`);--> statement-breakpoint
CREATE TABLE `webhooks` (
	`id` text PRIMARY KEY NOT NULL,
	`account_id` text NOT NULL,
	`name` text NOT NULL,
	`secret` text NOT NULL,
	`template` text NOT NULL,
	`allowed_hosts` text NOT NULL,
	`created_at` integer DEFAULT (cast(unixepoch('subsecond') * 1000 as integer)) NOT NULL,
	`deleted_at` integer,
	FOREIGN KEY (`account_id`) REFERENCES `accounts`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `webhooks_account` ON `webhooks` (`account_id`);