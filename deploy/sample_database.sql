-- A realistic sample source database for the demo and the compose stack: three schemas, foreign keys,
-- an enum, jsonb, arrays, a view, a table whose name needs quoting. Size: SET dbmigrate.sample_scale
-- before running it (1 = about 350,000 rows; the compose init script and `make demo` use 1).
CREATE SCHEMA catalog;
CREATE SCHEMA sales;
CREATE SCHEMA audit;

CREATE TYPE sales.order_status AS ENUM ('new', 'paid', 'shipped', 'delivered', 'returned');

CREATE TABLE catalog.categories (
    id        integer PRIMARY KEY,
    name      text NOT NULL,
    parent_id integer REFERENCES catalog.categories (id)
);

CREATE TABLE catalog.products (
    id         bigserial PRIMARY KEY,
    sku        text NOT NULL UNIQUE,
    name       text NOT NULL,
    price      numeric(10, 2) NOT NULL CHECK (price >= 0),
    tags       text[] NOT NULL DEFAULT '{}',
    attributes jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE catalog.product_categories (
    product_id  bigint  NOT NULL REFERENCES catalog.products (id) ON DELETE CASCADE,
    category_id integer NOT NULL REFERENCES catalog.categories (id),
    PRIMARY KEY (product_id, category_id)
);

CREATE TABLE sales.customers (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL,
    email      text NOT NULL UNIQUE,
    country    char(2) NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE sales.orders (
    id          bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES sales.customers (id),
    ordered_at  timestamptz NOT NULL,
    status      sales.order_status NOT NULL,
    total       numeric(12, 2) NOT NULL DEFAULT 0,
    note        text
);
CREATE INDEX orders_customer_idx ON sales.orders (customer_id, ordered_at);

CREATE TABLE sales.order_items (
    order_id   bigint   NOT NULL REFERENCES sales.orders (id) ON DELETE CASCADE,
    line_no    smallint NOT NULL,
    product_id bigint   NOT NULL REFERENCES catalog.products (id),
    quantity   integer  NOT NULL CHECK (quantity > 0),
    unit_price numeric(10, 2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_items_product_idx ON sales.order_items (product_id);

CREATE TABLE audit."login attempts" (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL,
    email     text NOT NULL,
    succeeded boolean NOT NULL,
    client    inet,
    details   jsonb
);

CREATE VIEW sales.customer_revenue AS
    SELECT c.id, c.name, c.country, count(o.id) AS orders, coalesce(sum(o.total), 0) AS revenue
    FROM sales.customers c LEFT JOIN sales.orders o ON o.customer_id = c.id
    GROUP BY c.id;

-- Data: deterministic (no random()), so two runs give the same database.
CREATE TEMP TABLE sample_scale AS
    SELECT greatest(1, (coalesce(nullif(current_setting('dbmigrate.sample_scale', true), ''), '1')::numeric * 1000)::int)
           AS k;

INSERT INTO catalog.categories (id, name, parent_id)
    SELECT i, 'category ' || i, CASE WHEN i > 10 THEN 1 + (i % 10) END FROM generate_series(1, 60) i;

INSERT INTO catalog.products (sku, name, price, tags, attributes)
    SELECT 'SKU-' || lpad(i::text, 7, '0'),
           'Product ' || i || CASE WHEN i % 97 = 0 THEN ' «édition spéciale» ''quoted''' ELSE '' END,
           round((1 + (i * 37 % 5000) / 7.0)::numeric, 2),
           ARRAY['tag' || (i % 7), 'tag' || (i % 11)],
           jsonb_build_object('weight_g', i % 2000, 'colour', (ARRAY['red', 'green', 'blue', 'black'])[1 + i % 4])
    FROM generate_series(1, 5 * (SELECT k FROM sample_scale)) i;

INSERT INTO catalog.product_categories (product_id, category_id)
    SELECT p.id, 1 + (p.id * c % 60) FROM catalog.products p, generate_series(1, 2) c
    ON CONFLICT DO NOTHING;

INSERT INTO sales.customers (name, email, country, created_at)
    SELECT 'Customer ' || i, 'customer' || i || '@example.com',
           (ARRAY['DE', 'FR', 'US', 'JP', 'BR', 'IN', 'CZ'])[1 + i % 7],
           timestamptz '2020-01-01 00:00:00+00' + (i * interval '37 minutes')
    FROM generate_series(1, 20 * (SELECT k FROM sample_scale)) i;

INSERT INTO sales.orders (customer_id, ordered_at, status, total, note)
    SELECT 1 + (i * 7919 % (20 * (SELECT k FROM sample_scale))),
           timestamptz '2021-01-01 00:00:00+00' + (i * interval '5 minutes'),
           (enum_range(NULL::sales.order_status))[1 + i % 5],
           0,
           CASE WHEN i % 13 = 0 THEN 'gift wrap, please' END
    FROM generate_series(1, 100 * (SELECT k FROM sample_scale)) i;

INSERT INTO sales.order_items (order_id, line_no, product_id, quantity, unit_price)
    SELECT o.id, l, 1 + ((o.id * 31 + l * 17) % (5 * (SELECT k FROM sample_scale))), 1 + (o.id + l) % 4,
           round((1 + ((o.id + l) * 37 % 5000) / 7.0)::numeric, 2)
    FROM sales.orders o, generate_series(1, 2) l;

UPDATE sales.orders o SET total = s.total
    FROM (SELECT order_id, sum(quantity * unit_price) AS total FROM sales.order_items GROUP BY order_id) s
    WHERE s.order_id = o.id;

INSERT INTO audit."login attempts" (at, email, succeeded, client, details)
    SELECT timestamptz '2024-01-01 00:00:00+00' + (i * interval '90 seconds'),
           'customer' || (1 + i % 500) || '@example.com', i % 9 <> 0,
           ('10.' || (i % 250) || '.' || (i / 250 % 250) || '.' || (1 + i % 200))::inet,
           CASE WHEN i % 9 = 0 THEN jsonb_build_object('reason', 'bad password') END
    FROM generate_series(1, 20 * (SELECT k FROM sample_scale)) i;

DROP TABLE sample_scale;
ANALYZE;
