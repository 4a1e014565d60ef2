CREATE TABLE `webhook_deliveries` (
	`webhook_id` text NOT NULL,
	`delivery_id` text NOT NULL,
	`received_at` integer NOT NULL,
	`batch_id` text,
	PRIMARY KEY(`webhook_id`, `delivery_id`)
);
--> statement-breakpoint
ALTER TABLE `batches` ADD `template` text;--> statement-breakpoint
ALTER TABLE `batches` ADD `submitted_at` integer;--> statement-breakpoint
ALTER TABLE `batches` ADD `canceled_at` integer;--> statement-breakpoint
ALTER TABLE `batches` ADD `finished_at` integer;--> statement-breakpoint
ALTER TABLE `batches` ADD `webhook_id` text;--> statement-breakpoint
ALTER TABLE `batches` ADD `callback_url` text;--> statement-breakpoint
ALTER TABLE `executions` ADD `retry_of` text;--> statement-breakpoint
ALTER TABLE `executions` ADD `input_name` text;--> statement-breakpoint
ALTER TABLE `executions` ADD `reused_from` text;