-- Database roles and schemas for LOCAL DEVELOPMENT (deploy/compose.yaml).
--
-- The official postgres image runs this file once, as the superuser, when its data directory
-- is empty (docker-entrypoint-initdb.d). To run it again, remove the volume:
--   docker compose -f deploy/compose.yaml down -v
--
-- The passwords below are placeholders for a laptop. Never use them anywhere else: in a real
-- cluster, create the roles with generated passwords (or your cloud's IAM auth) and hand each
-- service its DATABASE_URL through a secret.
--
-- One login role per service, each owning the schema of the same name. A service can create,
-- change and write tables only in its own schema; it has no privileges on the others' schemas
-- and cannot create objects in public.

CREATE DATABASE inventory;

\connect inventory

-- Nobody but the owner creates objects in public (already the default since PostgreSQL 15;
-- stated here so the file means the same on older servers), and only the service roles below
-- may connect to this database.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON DATABASE inventory FROM PUBLIC;

CREATE ROLE stock          LOGIN PASSWORD 'stock-local-only';
CREATE ROLE allocation     LOGIN PASSWORD 'allocation-local-only';
CREATE ROLE replenishment  LOGIN PASSWORD 'replenishment-local-only';
CREATE ROLE reconciliation LOGIN PASSWORD 'reconciliation-local-only';

-- CONNECT only: each schema below already exists and is owned by its service's role, so a
-- service never needs to create one (it would only if its schema were missing).
GRANT CONNECT ON DATABASE inventory TO stock, allocation, replenishment, reconciliation;

CREATE SCHEMA stock          AUTHORIZATION stock;
CREATE SCHEMA allocation     AUTHORIZATION allocation;
CREATE SCHEMA replenishment  AUTHORIZATION replenishment;
CREATE SCHEMA reconciliation AUTHORIZATION reconciliation;
