-- cairn_apply_batches(jobs, blobs): a group of WriteBatches (store/base.py)
-- applied in one statement, so that a group commit costs one round trip to
-- the database, fences and thread claims included (issue 21). Each job is
-- applied in a subtransaction of its own: one that is refused (a lost
-- lease, a busy or changed thread, a checkpoint pointing at a value nobody
-- stored) leaves no trace and does not affect the others.
--
-- `jobs` is {"jobs": [batch, ...]} as store/_postgres_batch.py encodes it,
-- with the locks to take first ("shared_locks", "claimed", "fenced"). Every
-- JSON column value travels as a string holding its exact text, blob values
-- as 1-based indexes into `blobs`, and the empty parts of a batch are left
-- out (a part that is there costs a statement). It returns a JSON array
-- with one outcome per job: {"ok": true}, {"refused": kind, "detail": text}
-- with kind lease_lost, thread_busy, thread_changed or missing_blobs, or
-- {"error": sqlstate, "detail": message}.
--
-- Locks are taken before any job writes, each kind in id order, so that two
-- groups never deadlock: the shared advisory locks of the threads whose
-- checkpoints rely on stored values (against a concurrent prune), then the
-- rows of the claimed threads and the fenced runs.
CREATE OR REPLACE FUNCTION cairn_apply_batches(jobs json, blobs bytea[]) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    docs jsonb := jobs::jsonb;
    job jsonb;
    outcomes jsonb[] := '{}';
    found_status text;
    found_updated double precision;
    found_token bigint;
    fenced boolean;
    missing text;
    row_ record;
BEGIN
    IF docs ? 'shared_locks' THEN
        PERFORM pg_advisory_xact_lock_shared(hashtextextended('cairn.thread.' || t, 0))
        FROM jsonb_array_elements_text(docs -> 'shared_locks') AS t ORDER BY t;
    END IF;
    IF docs ? 'claimed' THEN
        PERFORM 1 FROM threads
        WHERE thread_id IN (SELECT jsonb_array_elements_text(docs -> 'claimed'))
        ORDER BY thread_id FOR UPDATE;
    END IF;
    IF docs ? 'fenced' THEN
        PERFORM 1 FROM runs
        WHERE run_id IN (SELECT jsonb_array_elements_text(docs -> 'fenced'))
        ORDER BY run_id FOR UPDATE;
    END IF;

    FOR job IN SELECT * FROM jsonb_array_elements(docs -> 'jobs') LOOP
        BEGIN
            -- A run start: the thread is not busy, and unchanged since read.
            IF job ? 'claim_thread' THEN
                SELECT status, updated_at INTO found_status, found_updated
                FROM threads WHERE thread_id = job ->> 'claim_thread' FOR UPDATE;
                IF FOUND AND found_status = 'busy' THEN
                    RAISE EXCEPTION USING ERRCODE = 'CA001', MESSAGE = job ->> 'claim_thread';
                END IF;
                IF FOUND AND job ? 'claim_thread_at'
                        AND found_updated <> (job ->> 'claim_thread_at')::double precision THEN
                    RAISE EXCEPTION USING ERRCODE = 'CA002', MESSAGE = job ->> 'claim_thread';
                END IF;
            END IF;
            -- The fence: the run still carries the batch's lease.
            fenced := FALSE;
            IF job ? 'lease' THEN
                SELECT lease_token INTO found_token
                FROM runs WHERE run_id = job -> 'lease' ->> 'run_id' FOR UPDATE;
                fenced := FOUND;
                IF FOUND AND found_token <> (job -> 'lease' ->> 'token')::bigint THEN
                    RAISE EXCEPTION USING ERRCODE = 'CA003', MESSAGE = job -> 'lease' ->> 'run_id';
                END IF;
            END IF;

            IF job ? 'threads' THEN
                FOR row_ IN SELECT * FROM jsonb_to_recordset(job -> 'threads') AS x(
                    thread_id text, created_at double precision, updated_at double precision,
                    metadata text, status text, request_id text)
                LOOP
                    INSERT INTO threads (thread_id, created_at, updated_at, metadata, status,
                        request_id)
                    VALUES (row_.thread_id, row_.created_at, row_.updated_at,
                        row_.metadata::jsonb, row_.status, row_.request_id)
                    ON CONFLICT (thread_id) DO UPDATE SET
                        created_at = excluded.created_at, updated_at = excluded.updated_at,
                        metadata = excluded.metadata, status = excluded.status,
                        request_id = excluded.request_id;
                END LOOP;
            END IF;
            IF job ? 'thread_statuses' THEN
                FOR row_ IN SELECT * FROM jsonb_to_recordset(job -> 'thread_statuses') AS x(
                    thread_id text, status text, updated_at double precision)
                LOOP
                    UPDATE threads SET status = row_.status, updated_at = row_.updated_at
                    WHERE thread_id = row_.thread_id;
                END LOOP;
            END IF;
            IF job ? 'runs' THEN
                FOR row_ IN SELECT * FROM jsonb_to_recordset(job -> 'runs') AS x(
                    run_id text, thread_id text, target text, state text, durability text,
                    created_at double precision, updated_at double precision,
                    checkpoint_id text, metadata text, stream_modes text, request_id text,
                    has_output boolean, output text, interrupts text, error text,
                    request_hash text, recursion_limit integer, waiting text,
                    trace_context text)
                LOOP
                    INSERT INTO runs (run_id, thread_id, target, state, durability,
                        created_at, updated_at, checkpoint_id, metadata, stream_modes,
                        request_id, has_output, output, interrupts, error, request_hash,
                        recursion_limit, waiting, trace_context)
                    VALUES (row_.run_id, row_.thread_id, row_.target, row_.state,
                        row_.durability, row_.created_at, row_.updated_at, row_.checkpoint_id,
                        row_.metadata::jsonb, row_.stream_modes, row_.request_id,
                        row_.has_output, row_.output, row_.interrupts, row_.error,
                        row_.request_hash, row_.recursion_limit, row_.waiting,
                        row_.trace_context)
                    ON CONFLICT (run_id) DO UPDATE SET
                        thread_id = excluded.thread_id, target = excluded.target,
                        state = excluded.state, durability = excluded.durability,
                        created_at = excluded.created_at, updated_at = excluded.updated_at,
                        checkpoint_id = excluded.checkpoint_id, metadata = excluded.metadata,
                        stream_modes = excluded.stream_modes, request_id = excluded.request_id,
                        has_output = excluded.has_output, output = excluded.output,
                        interrupts = excluded.interrupts, error = excluded.error,
                        request_hash = excluded.request_hash,
                        recursion_limit = excluded.recursion_limit,
                        waiting = excluded.waiting, trace_context = excluded.trace_context;
                END LOOP;
            END IF;
            -- The run is nobody's until its timer is due; its lease ends.
            IF job ? 'timers' THEN
                FOR row_ IN SELECT * FROM jsonb_to_recordset(job -> 'timers') AS x(
                    run_id text, wake_at double precision)
                LOOP
                    UPDATE runs SET owner_id = '', lease_token = lease_token + 1,
                        wake_at = row_.wake_at
                    WHERE run_id = row_.run_id;
                END LOOP;
            END IF;
            IF job ? 'clear_interrupt_timers' THEN
                UPDATE runs SET wake_at = NULL
                WHERE thread_id = job ->> 'clear_interrupt_timers' AND state = 'interrupted'
                    AND wake_at IS NOT NULL;
            END IF;

            IF job ? 'checkpoints' THEN
                INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id,
                    parent_checkpoint_id, channel_versions, metadata, created_at)
                SELECT x.thread_id, x.checkpoint_ns, x.checkpoint_id, x.parent_checkpoint_id,
                    x.channel_versions::jsonb, x.metadata::jsonb, x.created_at
                FROM jsonb_to_recordset(job -> 'checkpoints') AS x(thread_id text,
                    checkpoint_ns text, checkpoint_id text, parent_checkpoint_id text,
                    channel_versions text, metadata text, created_at double precision)
                ON CONFLICT DO NOTHING;
            END IF;
            IF job ? 'blobs' THEN
                INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type,
                    blob)
                SELECT x.thread_id, x.checkpoint_ns, x.channel, x.version, x.type, blobs[x.blob]
                FROM jsonb_to_recordset(job -> 'blobs') AS x(thread_id text,
                    checkpoint_ns text, channel text, version text, type text, blob integer)
                ON CONFLICT DO NOTHING;
            END IF;
            IF job ? 'writes' THEN
                INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id,
                    idx, channel, type, blob, task_path)
                SELECT x.thread_id, x.checkpoint_ns, x.checkpoint_id, x.task_id, x.idx,
                    x.channel, x.type, blobs[x.blob], x.task_path
                FROM jsonb_to_recordset(job -> 'writes') AS x(thread_id text,
                    checkpoint_ns text, checkpoint_id text, task_id text, idx integer,
                    channel text, type text, blob integer, task_path text)
                ON CONFLICT DO NOTHING;
            END IF;
            -- Special writes (idx < 0: results, errors, interrupts) are upserts.
            IF job ? 'special_writes' THEN
                FOR row_ IN SELECT * FROM jsonb_to_recordset(job -> 'special_writes') AS x(
                    thread_id text, checkpoint_ns text, checkpoint_id text, task_id text,
                    idx integer, channel text, type text, blob integer, task_path text)
                LOOP
                    INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id,
                        task_id, idx, channel, type, blob, task_path)
                    VALUES (row_.thread_id, row_.checkpoint_ns, row_.checkpoint_id,
                        row_.task_id, row_.idx, row_.channel, row_.type, blobs[row_.blob],
                        row_.task_path)
                    ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
                    DO UPDATE SET channel = excluded.channel, type = excluded.type,
                        blob = excluded.blob, task_path = excluded.task_path;
                END LOOP;
            END IF;
            IF job ? 'events' THEN
                INSERT INTO run_events (run_id, event_id, created_at, kind, payload)
                SELECT x.run_id, x.event_id, x.created_at, x.kind, x.payload
                FROM jsonb_to_recordset(job -> 'events') AS x(run_id text, event_id bigint,
                    created_at double precision, kind text, payload text)
                ON CONFLICT DO NOTHING;
            END IF;
            IF job ? 'targets' THEN
                INSERT INTO targets (name, registered_at)
                SELECT x.name, x.registered_at
                FROM jsonb_to_recordset(job -> 'targets') AS x(name text,
                    registered_at double precision)
                ON CONFLICT DO NOTHING;
            END IF;
            IF job ? 'graphs' THEN
                FOR row_ IN SELECT * FROM jsonb_to_recordset(job -> 'graphs') AS x(
                    name text, spec text, registered_at double precision)
                LOOP
                    INSERT INTO graphs (name, spec, registered_at)
                    VALUES (row_.name, row_.spec, row_.registered_at)
                    ON CONFLICT (name) DO UPDATE SET spec = excluded.spec,
                        registered_at = excluded.registered_at;
                END LOOP;
            END IF;

            -- The batch inserted the run: it takes the batch's lease.
            IF job ? 'lease' AND NOT fenced THEN
                UPDATE runs SET owner_id = job -> 'lease' ->> 'owner',
                    lease_token = (job -> 'lease' ->> 'token')::bigint
                WHERE run_id = job -> 'lease' ->> 'run_id';
            END IF;

            -- Channels a checkpoint lists without sending a value must point
            -- at a stored blob. LATERAL ... LIMIT 1 keeps this one primary-key
            -- probe per channel: as an anti-join the planner may hash every
            -- blob of the thread, and a step would cost more as its history
            -- grows.
            IF job ? 'blob_checks' THEN
                FOR row_ IN SELECT * FROM jsonb_to_recordset(job -> 'blob_checks') AS x(
                    thread_id text, checkpoint_ns text, checkpoint_id text, versions text)
                LOOP
                    SELECT string_agg(quote_literal(v.key), ', ' ORDER BY v.key COLLATE "C")
                    INTO missing
                    FROM jsonb_each_text(row_.versions::jsonb) AS v
                    LEFT JOIN LATERAL (
                        SELECT TRUE AS found FROM checkpoint_blobs AS b
                        WHERE b.thread_id = row_.thread_id
                            AND b.checkpoint_ns = row_.checkpoint_ns
                            AND b.channel = v.key AND b.version = v.value
                        LIMIT 1
                    ) AS b ON TRUE
                    WHERE b.found IS NULL;
                    IF missing IS NOT NULL THEN
                        RAISE EXCEPTION USING ERRCODE = 'CA004', MESSAGE = format(
                            'checkpoint %L of thread %L sends no value for channels [%s] and'
                            ' no earlier checkpoint stored them',
                            row_.checkpoint_id, row_.thread_id, missing);
                    END IF;
                END LOOP;
            END IF;
            outcomes := outcomes || jsonb_build_object('ok', TRUE);
        EXCEPTION
            WHEN SQLSTATE 'CA001' THEN
                outcomes := outcomes
                    || jsonb_build_object('refused', 'thread_busy', 'detail', SQLERRM);
            WHEN SQLSTATE 'CA002' THEN
                outcomes := outcomes
                    || jsonb_build_object('refused', 'thread_changed', 'detail', SQLERRM);
            WHEN SQLSTATE 'CA003' THEN
                outcomes := outcomes
                    || jsonb_build_object('refused', 'lease_lost', 'detail', SQLERRM);
            WHEN SQLSTATE 'CA004' THEN
                outcomes := outcomes
                    || jsonb_build_object('refused', 'missing_blobs', 'detail', SQLERRM);
            WHEN OTHERS THEN
                outcomes := outcomes
                    || jsonb_build_object('error', SQLSTATE, 'detail', SQLERRM);
        END;
    END LOOP;
    RETURN to_json(outcomes);
END
$$;
