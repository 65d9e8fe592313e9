-- Coupon use on the Revenue dashboard: fct_orders_daily counts the placed orders that used a coupon code (version 2
-- order events carry one). Rows loaded before this migration read 0 until their interval is reloaded.
ALTER TABLE serving.fct_orders_daily
    ADD COLUMN IF NOT EXISTS orders_with_coupon bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN serving.fct_orders_daily.orders_with_coupon IS
    'Placed orders that used a coupon code (version 2 events carry one; version 1 events never count).';
