-- The captured table of the cdc-lakehouse example. REPLICA IDENTITY FULL: an
-- update's or delete's change event carries the whole old row.
create table accounts (
  id int primary key,
  name text not null,
  balance bigint,
  email text,
  changed_at bigint
);
alter table accounts replica identity full;
-- When each row last changed (ms since the epoch), to show the lag to the lake.
create function stamp() returns trigger language plpgsql as $$
begin
  new.changed_at := (extract(epoch from clock_timestamp()) * 1000)::bigint;
  return new;
end $$;
create trigger stamp before insert or update on accounts for each row execute function stamp();
insert into accounts (id, name, balance, email)
  select i, 'customer-' || i, i * 100, 'c' || i || '@example.com' from generate_series(1, 1000) i;
