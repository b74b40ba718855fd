-- The W3C trace context of a run's span (a JSON object: traceparent and maybe
-- tracestate), which its tasks and a run resuming it continue.
ALTER TABLE runs ADD COLUMN trace_context TEXT NOT NULL DEFAULT '{}';
