-- 0-bootstrap's database schema (its db/ directory in github.com/threefoldtech/0-bootstrap):
-- one table; 0-bootstrap's README creates the database with `sqlite3 DB < schema`.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE provision (client varchar(32) primary key, branch varchar(256), zerotier varchar(32), kargs text);
COMMIT;
