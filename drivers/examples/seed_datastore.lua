local ds = require "datastore"

local my_func = function() return 1 end
local my_table = {}
my_table.number = 1
my_table.string = "asdf"

local nested_func_table = {}
nested_func_table.sub_table = {}
nested_func_table.func = my_func

local multi_nested_table = {}
multi_nested_table.deeper = {}
multi_nested_table.deeper.number = 1
multi_nested_table.deeper.deepest = {}

my_ds = ds.init()

-- This will move these values into the datastore and do a check that things are
-- valid.  Since all values here are valid, this will be fine
my_ds.my_table = my_table

-- The above check happens recursively so nested values will be verified as well
my_ds.multi_nested_table = multi_nested_table

-- These should fail
local function set_func()
  my_ds.my_func = my_func
end

succ, val = pcall(set_func)
if succ then
  print("should have failed to set function")
else
  -- Data store keys and values must be JSON encodable: function: 0x55a76bbfc490 is of unsupported type function
  print(val)
end

local function set_nested_func()
  my_ds.nested_func = nested_func_table
end

succ, val = pcall(set_nested_func)
if succ then
  print("should have failed to set a nested function but didnt'")
else
-- Data store keys and values must be JSON encodable: function: 0x55a76bbfc490 is of unsupported type function
  print(val)
end

print(my_ds:is_dirty()) -- true
my_ds:save() -- sends table out for persistence.
print(my_ds:is_dirty()) -- false

my_ds.my_table = nil
print(my_ds:is_dirty()) -- true
my_ds:save()
