ALTER TABLE `executions` ADD `version` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `executions` ADD `shard` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `pools` ADD `dispatch_shards` integer DEFAULT 1 NOT NULL;