# Install the CMake package (find_package(ipcbus CONFIG) -> ipcbus::ipcbus),
# a pkg-config file, the agent's unit and configuration, and a .deb by CPack.
include(CMakePackageConfigHelpers)
set(IPCBUS_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/ipcbus)
install(EXPORT ipcbusTargets NAMESPACE ipcbus:: DESTINATION ${IPCBUS_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/ipcbusConfig.cmake.in
  ${PROJECT_BINARY_DIR}/ipcbusConfig.cmake INSTALL_DESTINATION ${IPCBUS_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ipcbusConfigVersion.cmake
  COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ipcbusConfig.cmake
  ${PROJECT_BINARY_DIR}/ipcbusConfigVersion.cmake DESTINATION ${IPCBUS_CMAKE_DIR})
# The .pc finds its prefix from where it lies (pkg-config's pcfiledir), so an
# install moved or made with `cmake --install --prefix` still points at itself.
file(RELATIVE_PATH IPCBUS_PC_TO_PREFIX "${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig"
  "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "/$" "" IPCBUS_PC_TO_PREFIX "${IPCBUS_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/ipcbus.pc.in ${PROJECT_BINARY_DIR}/ipcbus.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/ipcbus.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
# The agent's unit reads /etc/ipcbus.toml: /etc for the /usr prefix (the .deb),
# PREFIX/etc otherwise (relative, so that `cmake --install --prefix` is honoured).
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(IPCBUS_ETC_DIR /etc)
else()
  set(IPCBUS_ETC_DIR ${CMAKE_INSTALL_SYSCONFDIR})
endif()
install(FILES ${PROJECT_SOURCE_DIR}/etc/ipcbus.toml DESTINATION ${IPCBUS_ETC_DIR})
install(FILES ${PROJECT_SOURCE_DIR}/etc/ipcbus.toml DESTINATION ${CMAKE_INSTALL_DATADIR}/ipcbus)
# systemd looks for units in lib/systemd/system, not in the multiarch libdir.
# The unit names the configured prefix's paths (a unit cannot be relative).
if(IS_ABSOLUTE "${IPCBUS_ETC_DIR}")
  set(IPCBUS_UNIT_ETCDIR "${IPCBUS_ETC_DIR}")
else()
  set(IPCBUS_UNIT_ETCDIR "${CMAKE_INSTALL_PREFIX}/${IPCBUS_ETC_DIR}")
endif()
set(IPCBUS_UNIT_BINDIR "${CMAKE_INSTALL_FULL_BINDIR}")
set(IPCBUS_UNIT_DOCDIR "${CMAKE_INSTALL_FULL_DOCDIR}")
configure_file(${PROJECT_SOURCE_DIR}/agent/ipcbus-agent.service.in
  ${PROJECT_BINARY_DIR}/ipcbus-agent.service @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/ipcbus-agent.service DESTINATION lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/architecture.md
  ${PROJECT_SOURCE_DIR}/docs/cli.md ${PROJECT_SOURCE_DIR}/docs/configuration.md
  ${PROJECT_SOURCE_DIR}/docs/failure-model.md DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME ipcbus)
set(CPACK_PACKAGE_CONTACT "ipcbus maintainers <ipcbus@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "shared-memory publish/subscribe event bus")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libspdlog-dev, libtomlplusplus-dev")
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
include(CPack)
