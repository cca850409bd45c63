-- The session settings of a connection that writes into a rebuild's shadow schema.

-- name: shadow_first
-- projectors name their tables unqualified: the shadow's come first
SET search_path = {schema}, public

-- name: custom_plans
-- the shadow grows from empty, unanalyzed: a prepared statement's generic plan, made while
-- it was small, would scan it whole for every job looked up later
SET plan_cache_mode = force_custom_plan

-- name: reset_search_path
RESET search_path

-- name: reset_plans
RESET plan_cache_mode
