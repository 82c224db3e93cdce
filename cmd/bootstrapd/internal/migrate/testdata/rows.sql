-- Fixture rows for bootstrapd migrate's tests, in rowid order. Rows 1-4 map; every other row
-- has one reason (or more) not to, named in the tests.
INSERT INTO provision (rowid, client, branch, zerotier, kargs) VALUES
 (1, '52:54:00:00:00:01', 'production', '1234', ''),
 (2, '52-54-00-00-00-02', 'testing', '42', 'console=ttyS0'),
 (3, '525400000003', 'development', 7, 'zos-debug  console=tty1'),
 (4, '52:54:00:00:00:04', 'qa', '99', NULL),
 (5, '52:54:00:00:00:05', 'production', 'farm-12', ''),
 (6, 'not-a-mac', 'production', '1', ''),
 (7, '52:54:00:00:00:07', 'staging', '5', ''),
 (8, '52:54:00:00:00:08', 'test', '3', 'a;reboot'),
 (9, '52-54-00-00-00-01', 'prod', '9', ''),
 (10, '52:54:00:00:00:0a', 'Production', '0', NULL),
 (11, '52:54:00:00:00:0b', NULL, '5', '');
