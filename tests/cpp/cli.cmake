# CLI tests: tests/cli/test_cli.py runs the built `ngs` on the fixture models and compares
# its outputs with the C API's through the Python bindings (NGS_LIBRARY). The file
# runs as NGS_CLI_SHARDS ctest tests (in parallel): shard i runs the collected tests
# i, i + N, i + 2N, ... (tests/cli/conftest.py --shard), so every test, including a new
# one, lands in exactly one shard.
if(NGS_BUILD_APPS)
  set(NGS_CLI_SHARDS 4)
  math(EXPR last "${NGS_CLI_SHARDS} - 1")
  foreach(i RANGE ${last})
    add_test(NAME cli.shard${i}
             COMMAND ${NGS_TEST_PYTHON} -m pytest -q -p no:cacheprovider
                     ${PROJECT_SOURCE_DIR}/tests/cli/test_cli.py --shard ${i}/${NGS_CLI_SHARDS})
    set_tests_properties(cli.shard${i} PROPERTIES
      ENVIRONMENT "NGS_BIN=$<TARGET_FILE:ngs_cli>;NGS_FIXTURES_DIR=${NGS_FIXTURES_DIR};NGS_LIBRARY=$<TARGET_FILE:ngs>"
      LABELS cli TIMEOUT 600)
  endforeach()
endif()
