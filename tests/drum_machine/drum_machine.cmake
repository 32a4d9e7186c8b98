# ngs-drum-machine (apps/drum_machine) for real: tests/drum_machine/test_drum_machine.py
# starts `jackd -d dummy` under a server name of its own, the drum machine with --record,
# talks OSC to it (liblo through ctypes, and liblo-tools' oscsend) and compares the
# recording, /save and --offline with the library's own renders. The live test is skipped
# (and ctest reports the test as skipped) only when jackd is not installed.
if(TARGET ngs_drum_machine)
  find_program(NGS_JACKD jackd)
  find_program(NGS_OSCSEND oscsend)
  set(ngs_jackd "")
  if(NGS_JACKD)
    set(ngs_jackd "${NGS_JACKD}")
  endif()
  set(ngs_oscsend "")
  if(NGS_OSCSEND)
    set(ngs_oscsend "${NGS_OSCSEND}")
  endif()
  # Two entries: the live session (reported as skipped without jackd) and the rest, whose
  # failures a skip must not hide.
  set(ngs_env "NGS_DRUM_MACHINE=$<TARGET_FILE:ngs_drum_machine>;NGS_LIBRARY=$<TARGET_FILE:ngs>;NGS_SOURCE_DIR=${PROJECT_SOURCE_DIR};NGS_JACKD=${ngs_jackd};NGS_OSCSEND=${ngs_oscsend}")
  add_test(NAME drum_machine.live
           COMMAND ${NGS_TEST_PYTHON} -m pytest -q -rs -p no:cacheprovider -k live
                   ${PROJECT_SOURCE_DIR}/tests/drum_machine/test_drum_machine.py)
  set_tests_properties(drum_machine.live PROPERTIES ENVIRONMENT "${ngs_env}"
    SKIP_REGULAR_EXPRESSION "jackd is not installed" LABELS apps TIMEOUT 120)
  add_test(NAME drum_machine.offline
           COMMAND ${NGS_TEST_PYTHON} -m pytest -q -rs -p no:cacheprovider -k "not live"
                   ${PROJECT_SOURCE_DIR}/tests/drum_machine/test_drum_machine.py)
  set_tests_properties(drum_machine.offline PROPERTIES ENVIRONMENT "${ngs_env}" LABELS apps TIMEOUT 120)
endif()

# The worker <-> audio thread handoff and the sequencer on their own (no JACK needed).
# Outside sanitizer builds it links the real-time interposer (tests/cpp/rt_interpose.cpp):
# the audio thread's block must not allocate, lock, wait or make a system call.
if(NGS_BUILD_APPS)
  set(ngs_handoff_rt "")
  if(NOT NGS_SANITIZE)
    set(ngs_handoff_rt ${PROJECT_SOURCE_DIR}/tests/cpp/rt_interpose.cpp)
  endif()
  ngs_add_gtest(test_drum_handoff
    SOURCES ${PROJECT_SOURCE_DIR}/tests/drum_machine/test_handoff.cpp
            ${PROJECT_SOURCE_DIR}/apps/drum_machine/handoff.cpp
            ${PROJECT_SOURCE_DIR}/apps/drum_machine/sequencer.cpp ${ngs_handoff_rt}
    LIBS Threads::Threads ${CMAKE_DL_LIBS} LABELS apps TIMEOUT 120)
  target_include_directories(test_drum_handoff PRIVATE ${PROJECT_SOURCE_DIR}/apps/drum_machine)
  target_compile_options(test_drum_handoff PRIVATE -ffp-contract=off)
  if(NOT NGS_SANITIZE)
    target_compile_definitions(test_drum_handoff PRIVATE NGS_DRUM_RT_CHECK=1)
  endif()
endif()
