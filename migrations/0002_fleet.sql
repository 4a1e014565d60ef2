CREATE TABLE `fleet_decisions` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`pool_id` text NOT NULL,
	`at` integer NOT NULL,
	`action` text NOT NULL,
	`server_id` text,
	`provider_id` text,
	`reason` text NOT NULL,
	`outcome` text NOT NULL,
	`error` text,
	`details` text
);
--> statement-breakpoint
CREATE INDEX `fleet_decisions_pool_at` ON `fleet_decisions` (`pool_id`,`at`);--> statement-breakpoint
CREATE TABLE `fleet_locks` (
	`pool_id` text PRIMARY KEY NOT NULL,
	`holder` text NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `fleet_pools` (
	`pool_id` text PRIMARY KEY NOT NULL,
	`config` text NOT NULL,
	`updated_at` integer DEFAULT (cast(unixepoch('subsecond') * 1000 as integer)) NOT NULL,
	FOREIGN KEY (`pool_id`) REFERENCES `pools`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
ALTER TABLE `servers` ADD `drain_requested_at` integer;--> statement-breakpoint
ALTER TABLE `servers` ADD `idle_since` integer;--> statement-breakpoint
ALTER TABLE `servers` ADD `deleted_reason` text;