# SMS adapter: adapters/smpp.c against bench/smsc_sim and against node's `smpp` package.
add_executable(smpp_itest ${CMAKE_CURRENT_LIST_DIR}/test_smpp.c)
target_link_libraries(smpp_itest PRIVATE tocsin_adapters)
set(SMPP_WORK ${CMAKE_CURRENT_BINARY_DIR}/smpp-work)
file(MAKE_DIRECTORY ${SMPP_WORK})

add_test(NAME integration_smpp_sim
  COMMAND smpp_itest sim $<TARGET_FILE:smsc_sim> ${SMPP_WORK})
set_tests_properties(integration_smpp_sim PROPERTIES LABELS integration TIMEOUT 120
  SKIP_RETURN_CODE 77)

add_test(NAME integration_smpp_npm
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/test_smpp.sh $<TARGET_FILE:smpp_itest>
          ${CMAKE_CURRENT_LIST_DIR}/test_smpp.js ${CMAKE_BINARY_DIR}/smpp-npm ${SMPP_WORK})
set_tests_properties(integration_smpp_npm PROPERTIES LABELS integration TIMEOUT 300
  SKIP_RETURN_CODE 77)
