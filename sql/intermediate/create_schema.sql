-- The intermediate layer holds the identity links and everything derived from them.
create schema if not exists intermediate
