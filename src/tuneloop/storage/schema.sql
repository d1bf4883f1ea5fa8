-- tuneloop's stores on PostgreSQL: one schema per store, one role per stage.
-- Run by `tuneloop db init` as an administrator, after the roles exist; idempotent.
-- {p} is the role prefix ([storage] role_prefix). Each grant below is a promise the code makes
-- that the database now keeps for any client:
--   {p}gateway   ingest: writes the training store and the eval bucket; reads eval hashes only
--   {p}train     curate, train: reads the training store and eval hashes, nothing else
--   {p}eval      evaluator, evalset, gate: the only role that reads eval text
--   {p}serve     the server: appends to the serving log
--   {p}erasure   forget: deletes training records, clears eval and serving-log text
--   {p}registry  MLflow's tables (schema mlflow)

CREATE SCHEMA IF NOT EXISTS train;
CREATE SCHEMA IF NOT EXISTS evalstore;
CREATE SCHEMA IF NOT EXISTS serving;
CREATE SCHEMA IF NOT EXISTS mlflow AUTHORIZATION {p}registry;
REVOKE ALL ON SCHEMA public FROM PUBLIC;

-- the training store ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS train.records (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT UNIQUE NOT NULL,
    user_id TEXT,
    conversation_id TEXT,
    created_at TEXT,
    ingested_at TEXT NOT NULL,
    batch TEXT NOT NULL,
    record_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_user ON train.records(user_id);
CREATE TABLE IF NOT EXISTS train.routes (
    key TEXT PRIMARY KEY,
    side TEXT NOT NULL CHECK (side IN ('train', 'eval')),
    first_seen TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS train.feedback (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    record_id TEXT NOT NULL,
    source_key TEXT UNIQUE NOT NULL,
    received_at TEXT NOT NULL,
    thumbs TEXT,
    rating DOUBLE PRECISION,
    correction TEXT
);
CREATE INDEX IF NOT EXISTS feedback_record ON train.feedback(record_id);
CREATE TABLE IF NOT EXISTS train.cursors (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

-- the eval store: append-only, hash-chained (see evalside/store.py) ------------------------------
CREATE TABLE IF NOT EXISTS evalstore.schema_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO evalstore.schema_meta(key, value) VALUES ('schema_version', '2')
    ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS evalstore.items (
    seq BIGINT PRIMARY KEY,
    item_id TEXT UNIQUE NOT NULL,
    suite TEXT NOT NULL,
    record_json TEXT,
    salt TEXT,
    content_hash TEXT NOT NULL,
    "window" TEXT,
    created_at TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    row_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_suite ON evalstore.items(suite);
CREATE TABLE IF NOT EXISTS evalstore.refused_writes (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TEXT NOT NULL,
    operation TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS evalstore.erasures (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_id TEXT NOT NULL,
    erased_at TEXT NOT NULL,
    request_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS erasures_item ON evalstore.erasures(item_id);

-- Refusals: the database raises for every client, the owner included; the server log keeps
-- each one with its statement (log_min_error_statement = error, the default).
CREATE OR REPLACE FUNCTION evalstore.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'eval store is append-only: % on %.% refused (by %)',
        TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, session_user
        USING ERRCODE = 'insufficient_privilege';
END $$;
-- The one UPDATE let through: clearing an item's text and salt, once its erasure is recorded.
CREATE OR REPLACE FUNCTION evalstore.items_erasure_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.record_json IS NULL AND NEW.salt IS NULL
       AND NEW.seq IS NOT DISTINCT FROM OLD.seq AND NEW.item_id IS NOT DISTINCT FROM OLD.item_id
       AND NEW.suite IS NOT DISTINCT FROM OLD.suite
       AND NEW.content_hash IS NOT DISTINCT FROM OLD.content_hash
       AND NEW."window" IS NOT DISTINCT FROM OLD."window"
       AND NEW.created_at IS NOT DISTINCT FROM OLD.created_at
       AND NEW.prev_hash IS NOT DISTINCT FROM OLD.prev_hash
       AND NEW.row_hash IS NOT DISTINCT FROM OLD.row_hash
       AND EXISTS (SELECT 1 FROM evalstore.erasures e WHERE e.item_id = OLD.item_id) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'eval store is append-only: UPDATE on evalstore.items refused (by %)',
        session_user USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE TRIGGER items_no_update BEFORE UPDATE ON evalstore.items
    FOR EACH ROW EXECUTE FUNCTION evalstore.items_erasure_only();
CREATE OR REPLACE TRIGGER items_no_delete BEFORE DELETE ON evalstore.items
    FOR EACH ROW EXECUTE FUNCTION evalstore.refuse();
CREATE OR REPLACE TRIGGER items_no_truncate BEFORE TRUNCATE ON evalstore.items
    FOR EACH STATEMENT EXECUTE FUNCTION evalstore.refuse();
CREATE OR REPLACE TRIGGER refused_writes_no_change BEFORE UPDATE OR DELETE
    ON evalstore.refused_writes FOR EACH ROW EXECUTE FUNCTION evalstore.refuse();
CREATE OR REPLACE TRIGGER refused_writes_no_truncate BEFORE TRUNCATE ON evalstore.refused_writes
    FOR EACH STATEMENT EXECUTE FUNCTION evalstore.refuse();
CREATE OR REPLACE TRIGGER erasures_no_change BEFORE UPDATE OR DELETE ON evalstore.erasures
    FOR EACH ROW EXECUTE FUNCTION evalstore.refuse();
CREATE OR REPLACE TRIGGER erasures_no_truncate BEFORE TRUNCATE ON evalstore.erasures
    FOR EACH STATEMENT EXECUTE FUNCTION evalstore.refuse();

-- the serving log: append-only, erasure-shaped updates only (see state/serving_log.py) -----------------
CREATE TABLE IF NOT EXISTS serving.responses (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    response_id TEXT UNIQUE NOT NULL,
    created_at TEXT NOT NULL,
    created_unix DOUBLE PRECISION NOT NULL,
    tenant TEXT NOT NULL,
    user_id TEXT,
    conversation_id TEXT,
    messages_json TEXT NOT NULL,
    answer TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error', 'cancelled')),
    error TEXT,
    finish_reason TEXT,
    arm TEXT NOT NULL,
    model_version TEXT NOT NULL,
    adapter_sha256 TEXT,
    canary_id TEXT,
    latency_s DOUBLE PRECISION,
    ttft_s DOUBLE PRECISION,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    degenerate INTEGER NOT NULL DEFAULT 0,
    erased_at TEXT
);
CREATE INDEX IF NOT EXISTS responses_canary ON serving.responses(canary_id);
CREATE TABLE IF NOT EXISTS serving.feedback (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    feedback_id TEXT UNIQUE NOT NULL,
    response_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    tenant TEXT NOT NULL,
    thumbs TEXT CHECK (thumbs IN ('up', 'down')),
    rating DOUBLE PRECISION,
    correction TEXT,
    comment TEXT,
    erased_at TEXT
);
CREATE INDEX IF NOT EXISTS feedback_response ON serving.feedback(response_id);

CREATE OR REPLACE FUNCTION serving.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the serving log is append-only: % on %.% refused (by %)',
        TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, session_user
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE FUNCTION serving.responses_erasure_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.erased_at IS NOT NULL AND OLD.erased_at IS NULL AND NEW.messages_json = '[]'
       AND NEW.answer IS NULL AND NEW.error IS NULL AND NEW.user_id IS NULL
       AND NEW.conversation_id IS NULL
       AND (NEW.seq, NEW.response_id, NEW.created_at, NEW.created_unix, NEW.tenant, NEW.status,
            NEW.finish_reason, NEW.arm, NEW.model_version, NEW.adapter_sha256, NEW.canary_id,
            NEW.latency_s, NEW.ttft_s, NEW.prompt_tokens, NEW.completion_tokens, NEW.degenerate)
           IS NOT DISTINCT FROM
           (OLD.seq, OLD.response_id, OLD.created_at, OLD.created_unix, OLD.tenant, OLD.status,
            OLD.finish_reason, OLD.arm, OLD.model_version, OLD.adapter_sha256, OLD.canary_id,
            OLD.latency_s, OLD.ttft_s, OLD.prompt_tokens, OLD.completion_tokens, OLD.degenerate)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the serving log is append-only: UPDATE on serving.responses refused (by %)',
        session_user USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE FUNCTION serving.feedback_erasure_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.erased_at IS NOT NULL AND OLD.erased_at IS NULL AND NEW.correction IS NULL
       AND NEW.comment IS NULL
       AND (NEW.seq, NEW.feedback_id, NEW.response_id, NEW.received_at, NEW.tenant, NEW.thumbs,
            NEW.rating)
           IS NOT DISTINCT FROM
           (OLD.seq, OLD.feedback_id, OLD.response_id, OLD.received_at, OLD.tenant, OLD.thumbs,
            OLD.rating)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the serving log is append-only: UPDATE on serving.feedback refused (by %)',
        session_user USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE TRIGGER responses_no_update BEFORE UPDATE ON serving.responses
    FOR EACH ROW EXECUTE FUNCTION serving.responses_erasure_only();
CREATE OR REPLACE TRIGGER feedback_no_update BEFORE UPDATE ON serving.feedback
    FOR EACH ROW EXECUTE FUNCTION serving.feedback_erasure_only();
CREATE OR REPLACE TRIGGER responses_no_delete BEFORE DELETE ON serving.responses
    FOR EACH ROW EXECUTE FUNCTION serving.refuse();
CREATE OR REPLACE TRIGGER feedback_no_delete BEFORE DELETE ON serving.feedback
    FOR EACH ROW EXECUTE FUNCTION serving.refuse();
CREATE OR REPLACE TRIGGER responses_no_truncate BEFORE TRUNCATE ON serving.responses
    FOR EACH STATEMENT EXECUTE FUNCTION serving.refuse();
CREATE OR REPLACE TRIGGER feedback_no_truncate BEFORE TRUNCATE ON serving.feedback
    FOR EACH STATEMENT EXECUTE FUNCTION serving.refuse();

-- who may do what ---------------------------------------------------------------------------
REVOKE ALL ON ALL TABLES IN SCHEMA train, evalstore, serving FROM PUBLIC;
GRANT USAGE ON SCHEMA train, evalstore, serving
    TO {p}gateway, {p}train, {p}eval, {p}serve, {p}erasure;

GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA train TO {p}gateway;
GRANT UPDATE ON train.cursors TO {p}gateway;
GRANT SELECT ON ALL TABLES IN SCHEMA train TO {p}train, {p}eval;
GRANT SELECT, DELETE ON ALL TABLES IN SCHEMA train TO {p}erasure;

-- Eval text (record_json, salt) only for the evaluator and erasure: the others see the chain,
-- the ids and the erasures (what the contamination index is keyed by), never the text.
GRANT SELECT ON evalstore.schema_meta, evalstore.erasures
    TO {p}gateway, {p}train, {p}eval, {p}erasure;
GRANT SELECT (seq, item_id, suite, content_hash, "window", created_at, prev_hash, row_hash)
    ON evalstore.items TO {p}gateway, {p}train;
GRANT INSERT ON evalstore.items, evalstore.refused_writes TO {p}gateway;
GRANT SELECT, INSERT ON evalstore.items, evalstore.refused_writes, evalstore.erasures
    TO {p}eval;
GRANT SELECT, UPDATE (record_json, salt) ON evalstore.items TO {p}erasure;
GRANT SELECT, INSERT ON evalstore.erasures, evalstore.refused_writes TO {p}erasure;

GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA serving TO {p}serve;
GRANT SELECT ON ALL TABLES IN SCHEMA serving TO {p}gateway, {p}train, {p}eval;
GRANT SELECT, UPDATE ON ALL TABLES IN SCHEMA serving TO {p}erasure;
